# tests/pipeline/shard-compare.py A.json B.json [RTOL]: every number of two sf-reduce results within RTOL
# relative (default 1e-12), the same keys, strings and array lengths; throughput, provenance,
# seconds and the shard block aside (sfstream.compare_docs). Exit 0 equal, 1 not (the first
# differences printed).
import json, sys
import sfstream
a, b = (json.load(open(f)) for f in sys.argv[1:3])
n, worst, bad = sfstream.compare_docs(a, b, float(sys.argv[3]) if len(sys.argv) > 3 else 1e-12)
print(f"{n} numbers compared, worst relative difference {worst:.3g}, {len(bad)} differences")
for l in bad[:10]: print("  " + l)
sys.exit(1 if bad else 0)

# tests/pipeline/shard-compare.py A.json B.json [RTOL]: every number of two sf-reduce results within RTOL
# relative (default 1e-12), the same keys, strings and array lengths; throughput, provenance,
# seconds and the shard block aside. Exit 0 equal, 1 not (the first differences printed).
import json, sys
SKIP = {"throughput", "provenance", "seconds", "shard"}
a, b = (json.load(open(f)) for f in sys.argv[1:3])
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-12
bad = []; n = [0]; worst = [0.0]
def cmp(x, y, path):
    if isinstance(x, dict):
        if not isinstance(y, dict): bad.append(path + ": type"); return
        kx = sorted(k for k in x if k not in SKIP); ky = sorted(k for k in y if k not in SKIP)
        if kx != ky: bad.append(f"{path}: keys {set(kx) ^ set(ky)}"); return
        for k in kx: cmp(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        if not isinstance(y, list) or len(x) != len(y): bad.append(path + ": length"); return
        for i, (u, v) in enumerate(zip(x, y)): cmp(u, v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool) and isinstance(y, (int, float)):
        n[0] += 1
        d = abs(x - y); m = max(abs(x), abs(y))
        r = d / m if m else 0.0
        worst[0] = max(worst[0], r)
        if d > tol * m: bad.append(f"{path}: {x!r} vs {y!r} (rel {r:.3g})")
    elif x != y: bad.append(f"{path}: {x!r} vs {y!r}")
cmp(a, b, "")
print(f"{n[0]} numbers compared, worst relative difference {worst[0]:.3g}, {len(bad)} differences")
for l in bad[:10]: print("  " + l)
sys.exit(1 if bad else 0)

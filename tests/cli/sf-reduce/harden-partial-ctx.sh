# issue 15 (found by tests/fuzz/fuzz-partial.c): a 300-byte --merge partial claiming ctx
# 3749000370 sized sf-reduce's per-position accumulators from it (90 GB; ASan: out of memory).
# A partial's ctx must match its similarity.pos_n, or be at most 2^20 without one; a real
# partial still merges.
printf '{"partial":{"version":1,"paired":0,"tokens":6,"rows":2,"ctx":3749000370}}\n' > big.json
printf '{"partial":{"version":1,"paired":0,"tokens":6,"rows":2,"ctx":4,"similarity":{"row_n":[],"pos_n":[1,2]}}}\n' > short.json
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 2000000; sf-reduce --merge big.json big.json -o out.json); echo "rc=$?" >&2
sf-reduce --merge short.json -o out2.json; echo "rc=$?" >&2
cp "$SF_ROOT/tests/fuzz/seeds-fuzz-partial/acts.json" ok.json   # a real partial (6 tokens, ctx 3)
sf-reduce --merge ok.json ok.json -o out3.json && jq -r .tokens out3.json

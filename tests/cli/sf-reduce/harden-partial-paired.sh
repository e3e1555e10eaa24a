# issue 15 (found by tests/fuzz/fuzz-partial.c under UBSan): a --merge partial whose "paired" is
# a huge number was converted to int (undefined behaviour); paired must be 0 or 1.
printf '{"partial":{"version":1,"paired":555555555555,"tokens":6,"rows":2,"ctx":3}}\n' > p.json
sf-reduce --merge p.json -o out.json

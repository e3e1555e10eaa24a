# issue 15 (review): cfg.json's d_in / d_sae are sizes from input: each is at most 2^30 - 1, and
# even then nothing is reserved from them alone (every tensor's shape is checked against them
# before it is copied), so a cfg.json claiming a huge SAE over small weights costs nothing
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf
for cfg in '{"d_sae": 1073741823}' '{"d_sae": 1073741824}' '{"d_in": 1000000000000}' '{"d_in": -3}'; do
  rm -rf s && "$PY" "$SF_ROOT/tests/sfstream.py" sae s "{\"cfg\": $cfg}"
  # (no ulimit -v under ASan: its shadow memory needs the address space)
  ([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 400000; sf-encode --sae s -i a.sf > /dev/null); echo "rc $?"
done

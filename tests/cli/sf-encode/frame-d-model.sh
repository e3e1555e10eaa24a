"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"d": 12, "no_meta": true}' | sf-cat --pack | sf-encode --sae s > /dev/null

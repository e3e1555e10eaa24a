"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"d": 12}' | sf-cat --pack | sf-encode --sae s > /dev/null

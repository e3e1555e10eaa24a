"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"no_acts": true}' | sf-cat --pack | sf-encode --sae s > /dev/null

"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts | head -n 2 | sf-cat --pack | sf-encode --sae s > /dev/null

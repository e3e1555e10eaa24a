"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s -o /dev/full

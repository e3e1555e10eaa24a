"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"cfg": {"d_sae": 32}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

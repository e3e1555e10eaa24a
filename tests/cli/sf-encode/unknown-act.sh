"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"cfg": {"activation_fn_str": "gelu"}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

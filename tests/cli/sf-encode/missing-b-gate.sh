"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"cfg": {"architecture": "gated"}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"shape": {"b_enc": [23]}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

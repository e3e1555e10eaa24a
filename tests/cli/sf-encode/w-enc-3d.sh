"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"shape": {"W_enc": [8, 24, 1]}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

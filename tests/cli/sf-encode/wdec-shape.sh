"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"shape": {"W_dec": [24, 7]}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

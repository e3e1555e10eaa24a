"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"drop": ["b_enc"]}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

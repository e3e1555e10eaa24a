"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s '{"drop": ["b_enc"]}' && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

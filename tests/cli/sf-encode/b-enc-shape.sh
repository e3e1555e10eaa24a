"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s '{"shape": {"b_enc": [23]}}' && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

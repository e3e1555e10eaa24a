"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s '{"shape": {"W_enc": [8, 24, 1]}}' && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s '{"cfg": {"d_in": 9}}' && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | head -n 2 | sf-cat --pack | sf-encode --sae s > /dev/null

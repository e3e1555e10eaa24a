"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s -o /dev/full

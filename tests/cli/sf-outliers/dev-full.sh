"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-outliers --max-norm 3 -o /dev/full

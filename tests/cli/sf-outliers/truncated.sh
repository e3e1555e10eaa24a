"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | head -n 2 | sf-cat --pack | sf-outliers --max-norm 3 > /dev/null

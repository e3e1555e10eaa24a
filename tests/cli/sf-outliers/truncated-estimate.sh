"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | head -n 2 | sf-cat --pack | sf-outliers --estimate 100 --multiplier 2 > /dev/null

"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts '{"no_acts": true}' | sf-cat --pack | sf-outliers --max-norm 3 > /dev/null

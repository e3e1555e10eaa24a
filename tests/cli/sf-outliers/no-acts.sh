"$PY" "$SF_ROOT/tests/sfstream.py" acts '{"no_acts": true}' | sf-cat --pack | sf-outliers --max-norm 3 > /dev/null

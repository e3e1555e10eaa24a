"$PY" "$SF_ROOT/tests/sfstream.py" acts | head -n 2 | sf-cat --pack | sf-outliers --estimate 100 --multiplier 2 > /dev/null

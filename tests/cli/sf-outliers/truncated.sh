"$PY" "$SF_ROOT/tests/sfstream.py" acts | head -n 2 | sf-cat --pack | sf-outliers --max-norm 3 > /dev/null

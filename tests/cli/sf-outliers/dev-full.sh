"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-outliers --max-norm 3 -o /dev/full

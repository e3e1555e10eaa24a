"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"nan": [2]}' | sf-cat --pack | sf-outliers --max-norm 3 | sf-encode --sae s -q | sf-cat | tail -n 1

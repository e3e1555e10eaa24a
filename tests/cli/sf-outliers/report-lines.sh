"$PY" "$SF_ROOT/tests/sfstream.py" acts '{"nan": [4]}' | sf-cat --pack | sf-outliers --max-norm 1e9 --report r.jsonl | sf-cat | tail -n 1 && cat r.jsonl

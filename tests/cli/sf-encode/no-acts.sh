"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts '{"no_acts": true}' | sf-cat --pack | sf-encode --sae s > /dev/null

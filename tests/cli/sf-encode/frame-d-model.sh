"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts '{"d": 12, "no_meta": true}' | sf-cat --pack | sf-encode --sae s > /dev/null

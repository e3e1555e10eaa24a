"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s '{"cfg": {"activation_fn_str": "gelu"}}' && "$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

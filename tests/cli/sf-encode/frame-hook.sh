"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"hook": "blocks.0.hook_resid_pre", "no_meta": true}' | sf-cat --pack | sf-encode --sae s > /dev/null

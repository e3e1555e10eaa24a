"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"hook": "blocks.3.hook_resid_post"}' | sf-cat --pack | sf-encode --sae s > /dev/null

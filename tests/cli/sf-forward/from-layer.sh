"$PY" "$SF_ROOT/tests/sfstream.py" tiny m gemma && sf-forward --model m --from blocks.7.hook_resid_post --loss < /dev/null > /dev/null

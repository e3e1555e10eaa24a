"$PY" "$SF_ROOT/tests/sfstream.py" tiny m mistral && truncate -s 100 m/model.safetensors && sf-forward --model m --hook blocks.0.hook_resid_post < /dev/null > /dev/null

"$PY" "$SF_ROOT/tests/sfstream.py" tiny m mistral && sed -i s/MistralForCausalLM/GPT2LMHeadModel/ m/config.json && sf-forward --model m --hook blocks.0.hook_resid_post < /dev/null > /dev/null

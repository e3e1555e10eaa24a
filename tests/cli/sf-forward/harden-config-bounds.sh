# issue 15 (review): every number of config.json is checked against a stated bound before the
# checkpoint is used (hf-model.h): dimensions within [1, 1e9] and hidden_size <= 2^20,
# intermediate_size <= 2^22, heads x head_dim <= 2^20, vocab_size <= 2^30, layers <= 4096,
# max_position_embeddings <= 2^31 - 1; one line each, nothing reserved from them
"$PY" "$SF_ROOT/tests/sfstream.py" tiny m llama
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,3],"data":[1,5,7]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' | sf-cat --pack > tok.sf
cp m/config.json base.json
for kv in hidden_size=2097152 num_hidden_layers=5000 intermediate_size=8388608 vocab_size=1073741825 \
          num_attention_heads=1000000 head_dim=1000000 max_position_embeddings=3000000000 num_key_value_heads=3; do
  "$PY" -c "import json, sys; c = json.load(open('base.json')); k, v = sys.argv[1].split('='); c[k] = int(v); json.dump(c, open('m/config.json', 'w'))" "$kv"
  ([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 1000000; sf-forward --model m --hook blocks.0.hook_resid_post -i tok.sf -o /dev/null); echo "rc $?"
done

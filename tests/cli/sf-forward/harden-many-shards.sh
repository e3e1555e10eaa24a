# issue 15 (review): model.safetensors.index.json's weight_map sized the shard list by its
# entries (4 KB each) and found distinct files in n^2 steps: 10^5 entries naming 10^5 files
# ran for more than a minute. Now the files are found by sorting, and an index naming more than
# 4096 shard files is refused before the list is made; a sharded checkpoint still runs.
"$PY" "$SF_ROOT/tests/sfstream.py" tiny m llama 2 && cp -r m big && "$PY" - <<'PY'
import json
ix = json.load(open("big/model.safetensors.index.json"))
ix["weight_map"].update({f"extra.{i}": f"model-{i}.safetensors" for i in range(100000)})
json.dump(ix, open("big/model.safetensors.index.json", "w"))
PY
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[2,3],"data":[1,5,7,1,3,9]}}' '{"sf":1,"kind":"end","frames":1,"rows":2}' | sf-cat --pack > tok.sf
sf-forward --model m --hook blocks.1.hook_resid_post -i tok.sf -o /dev/null; echo "rc $?"
sf-forward --model big --hook blocks.1.hook_resid_post -i tok.sf -o /dev/null; echo "rc $?"

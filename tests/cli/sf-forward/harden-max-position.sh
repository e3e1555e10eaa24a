# issue 15: max_position_embeddings smaller than the frames' ctx was ignored; sf-forward now
# refuses, naming both (a config.json without the key is not checked)
"$PY" "$SF_ROOT/tests/sfstream.py" tiny m llama
"$PY" - <<'PY'
import json
c = json.load(open("m/config.json")); c["max_position_embeddings"] = 2
json.dump(c, open("m/config.json", "w"))
PY
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,3],"data":[1,5,7]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' | sf-cat --pack > tok.sf
sf-forward --model m --hook blocks.0.hook_resid_post -i tok.sf -o /dev/null

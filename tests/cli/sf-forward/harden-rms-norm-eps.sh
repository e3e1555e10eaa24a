# issue 15: rms_norm_eps -1 in config.json warned and exited 0; -1, 0 and 1e999 (inf) are refused
"$PY" "$SF_ROOT/tests/sfstream.py" tiny m llama
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,3],"data":[1,5,7]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' | sf-cat --pack > tok.sf
for eps in -1 0 1e999; do
  sed -i "s/\"rms_norm_eps\": *[-0-9.e]*/\"rms_norm_eps\": $eps/" m/config.json
  sf-forward --model m --hook blocks.0.hook_resid_post -i tok.sf -o /dev/null; echo "rc $?"
done

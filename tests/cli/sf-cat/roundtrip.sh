printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' > in.jsonl
sf-cat --pack -i in.jsonl | sf-cat > out.jsonl && cmp in.jsonl out.jsonl

printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' > in.jsonl
sf-cat --pack -i in.jsonl -o s.zst && zstd -q -t s.zst && sf-cat -i s.zst > a.jsonl && cmp in.jsonl a.jsonl
sf-cat --pack -i in.jsonl | sf-cat > b.jsonl && cmp in.jsonl b.jsonl

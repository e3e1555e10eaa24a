printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]}}' '{"sf":1,"kind":"end","frames":1,"rows":1}' | sf-cat --pack > s.bin
head -c $(($(wc -c < s.bin) - 3)) s.bin | sf-cat --check

printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]}}' | sf-cat --pack | sf-cat --check

mk() { printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]}}\n{"sf":1,"kind":"end","frames":1,"rows":1}\n' | sf-cat --pack; }
mk > a.sf; mk > b.sf
sf-compare --base a.sf --finetune b.sf -o out.sf

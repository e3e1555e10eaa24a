mk() { printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"sim","seq":0,"tokens":{"dtype":"i32","shape":[2,2],"data":[1,2,3,%s]},"cos":{"dtype":"f32","shape":[2,2],"data":[1,1,1,1]},"l2":{"dtype":"f32","shape":[2,2],"data":[0,0,0,0]}}\n{"sf":1,"kind":"end","frames":1,"rows":2}\n' "$1" | sf-cat --pack; }
mk 4 > a.sf; mk 5 > b.sf
sf-reduce --base a.sf --finetune b.sf

mk() { printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"acts","seq":0,"hook":"h","tokens":{"dtype":"i32","shape":[1,1],"data":[1]},"acts":{"dtype":"f32","shape":[1,1,%s],"data":[%s]}}\n{"sf":1,"kind":"end","frames":1,"rows":1}\n' "$1" "$2" | sf-cat --pack; }
mk 2 1,2 > a.sf; mk 3 1,2,3 > b.sf
sf-compare --base a.sf --finetune b.sf -o out.sf

printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"sim","seq":0,"tokens":{"dtype":"i32","shape":[1,2],"data":[1,2]},"cos":{"dtype":"f32","shape":[1,2],"data":[1,0.5]},"l2":{"dtype":"f32","shape":[1,2],"data":[0,1]}}\n{"sf":1,"kind":"end","frames":1,"rows":1}\n' | sf-cat --pack > s.sf
head -c $(( $(wc -c < s.sf) - 5 )) s.sf | sf-reduce

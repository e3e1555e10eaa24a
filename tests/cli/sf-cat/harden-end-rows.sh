# issue 15: the end frame's rows was never checked against the rows that arrived
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[2,3],"data":[1,5,7,1,3,9]}}\n{"sf":1,"kind":"end","frames":1,"rows":5}\n' | sf-cat --pack > s.sf
sf-cat --check -i s.sf

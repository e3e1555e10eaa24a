# issue 15: `cat s.sf s.sf | sf-reduce` counted one copy and exited 0; a second stream after the
# end frame is now an error
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[2,3],"data":[1,5,7,1,3,9]}}\n{"sf":1,"kind":"end","frames":1,"rows":2}\n' | sf-cat --pack > s.sf
cat s.sf s.sf | sf-reduce

# issue 15: bytes after the end frame passed sf-cat --check (plain file and .zst)
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[2,3],"data":[1,5,7,1,3,9]}}\n{"sf":1,"kind":"end","frames":1,"rows":2}\n' | sf-cat --pack > s.sf
{ cat s.sf; printf garbage; } > g.sf
sf-cat --check -i g.sf; echo "rc $?"
zstd -q < g.sf > g.sf.zst && sf-cat --check -i g.sf.zst; echo "rc $?"

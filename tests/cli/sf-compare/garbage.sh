echo garbage > g.sf
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"end","frames":0,"rows":0}\n' | sf-cat --pack > e.sf
sf-compare --base g.sf --finetune e.sf -o out.sf

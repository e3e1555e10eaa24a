# frames are refused on a terminal without -f (script gives the command a tty when available)
command -v script > /dev/null || { echo "sf-compare: error: skip"; exit 2; }
mk() { printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"end","frames":0,"rows":0}\n' | sf-cat --pack; }
mk > a.sf; mk > b.sf
script -qec "sf-compare --base a.sf --finetune b.sf" /dev/null > out.txt; rc=$?
grep -q "terminal" out.txt && exit $rc
exit 0

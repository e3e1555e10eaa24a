# valgrind finds no leak and no error in sf-cat reading, packing and summarising a stream
source "$SF_ROOT/tests/lib.sh"
command -v valgrind >/dev/null || skip "valgrind not installed"
[ "${SF_ASAN:-0}" = 1 ] && skip "valgrind cannot run ASan binaries (make asan); the plain build runs this"
vg() { valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$@"; }
cat > in.jsonl <<'J'
{"sf":1,"kind":"header","meta":{"model":"m","stages":[{"name":"x","version":"1","args":""}]}}
{"sf":1,"kind":"acts","seq":0,"hook":"blocks.0.hook_resid_post","tokens":{"dtype":"i32","shape":[1,2],"data":[5,6]},"acts":{"dtype":"bf16","shape":[1,2,3],"data":[0.5,1,2,3,4,5]},"feats":{"d_sae":4,"indptr":{"dtype":"u32","shape":[3],"data":[0,1,3]},"index":{"dtype":"u32","shape":[3],"data":[2,0,3]},"value":{"dtype":"f32","shape":[3],"data":[1.5,2.5,3.5]}}}
{"sf":1,"kind":"end","frames":1,"rows":1}
J
vg sf-cat --pack -i in.jsonl -o s.zst || die "valgrind: sf-cat --pack"
vg sf-cat -i s.zst > out.jsonl || die "valgrind: sf-cat"
vg sf-cat -i s.zst --summary > /dev/null || die "valgrind: sf-cat --summary"
cmp in.jsonl out.jsonl || die "round trip through .zst differs"
head -c 100 s.zst > t.zst
vg sf-cat -i t.zst --check 2> err.txt; rc=$?
[ $rc = 3 ] || { cat err.txt; die "truncated .zst: exit $rc, expected 3"; }
echo "valgrind clean"

#!/bin/bash
# issue 15: an output that is the same file as an input (same path, a hard link, a symlink) is
# refused with exit 2 before anything is opened, and the input is left as it was; "-", tcp://
# and ipc:// are not files; distinct files still work.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" "$SF_ROOT/tests/sfstream.py" sae s || die "sae"
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"
cp a.sf orig.sf; ln a.sf hard.sf; ln -s a.sf sym.sf
refused() { # NAME CMD...: exit 2, the one-line message, a.sf unchanged
  local name=$1; shift
  "$@" 2> err.txt; local rc=$?
  [ $rc = 2 ] || die "$name: exit $rc, expected 2 ($(cat err.txt))"
  grep -q "^[a-z-]*: error: .*: the output is the same file as the input " err.txt || die "$name: message: $(cat err.txt)"
  cmp -s a.sf orig.sf || die "$name: the input was changed"
}
refused "encode same path"     sf-encode --sae s -i a.sf -o a.sf
refused "encode hard link"     sf-encode --sae s -i a.sf -o hard.sf
refused "encode symlink"       sf-encode --sae s -i sym.sf -o ./a.sf
refused "outliers same path"   sf-outliers --max-norm 3 -i a.sf -o a.sf
refused "cat unpack"           sf-cat -i a.sf -o a.sf
refused "cat pack"             sf-cat --pack -i a.sf -o hard.sf
printf '{"text": "hello"}\n' > d.jsonl; cp d.jsonl a.sf; cp d.jsonl orig.sf
refused "tokenize positional"  sf-tokenize --format ids d.jsonl a.sf -o a.sf
cp "$SF_ROOT/tests/data/report/missing.json" a.sf; cp a.sf orig.sf
refused "report input"         sf-report a.sf -o a.sf
refused "report second input"  sf-report "$SF_ROOT/tests/data/report/missing.json" -i a.sf -o hard.sf
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"; cp a.sf orig.sf; cp a.sf b0.sf
refused "compare base"         sf-compare --base a.sf --finetune b0.sf -o a.sf
refused "compare finetune"     sf-compare --base b0.sf --finetune sym.sf -o hard.sf
refused "reduce -i"             sf-reduce -i a.sf -o a.sf
refused "reduce --base"         sf-reduce --base a.sf --finetune b0.sf -o hard.sf
sf-reduce -i a.sf -o r.json 2>/dev/null; cp r.json a.sf; cp a.sf orig.sf
refused "reduce --merge"        sf-reduce --merge a.sf -o a.sf
mkdir m0 && sf-mkmodel -o m0 --d-model 16 --layers 1 --heads 2 --d-ff 32 2>/dev/null || die "mkmodel"
sf-mkmodel -o m0 --finetune-of m0 --perturb-layers 0 2> err.txt; [ $? = 2 ] && grep -q "same file as the input" err.txt ||
  die "mkmodel finetune over its base: $(cat err.txt)"
# distinct outputs still work, and stdin/stdout are not files
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"
sf-encode --sae s -i a.sf -o b.sf || die "distinct paths refused"
sf-encode --sae s -i - -o - < a.sf > c.sf || die "stdin/stdout refused"
sf-cat --check -i b.sf && sf-cat --check -i c.sf || die "outputs not valid streams"
# a device read and written is no overwrite: /dev/null in and out (bench-tokenize's warm-up)
sf-cat --pack -i /dev/null -o /dev/null 2> dn.err
! grep -q "same file" dn.err || die "/dev/null as input and output refused: $(cat dn.err)"
echo OK

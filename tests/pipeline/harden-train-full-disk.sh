#!/bin/bash
# issue 15: on a full disk sf-train leaves no cfg.json beside a partial sae_weights.safetensors:
# all files are written to temps and renamed into place (weights first, cfg.json last) only when
# all are whole; a new directory is removed again, an existing SAE stays as it was.
# The full disk is `ulimit -f` with SIGXFSZ ignored: writes past the limit fail with EFBIG.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
full() { (trap '' XFSZ; ulimit -f "$1"; shift; exec "$@"); }
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"
full 64 sf-train -i a.sf -o new --d-sae 4096 2> err.txt; rc=$?
[ $rc = 1 ] || die "full disk: exit $rc, expected 1"
grep -qx 'sf-train: error: new: i/o error: new/sae_weights.safetensors: .*File too large' err.txt || die "message: $(cat err.txt)"
[ -e new ] && die "a partial SAE directory was left: $(ls -a new)"
sf-train -i a.sf -o old --d-sae 4096 || die "sf-train failed"
cp -r old keep
full 64 sf-train -i a.sf -o old --d-sae 8192 2> err.txt; rc=$?
[ $rc = 1 ] || die "full disk over an old SAE: exit $rc, expected 1"
for f in keep/*; do cmp -s "$f" "old/${f#keep/}" || die "old/${f#keep/} was changed"; done
[ "$(ls -A old | wc -l)" = "$(ls -A keep | wc -l)" ] || die "files left in old/: $(ls -A old)"
sf-encode --sae old -i a.sf -o /dev/null || die "the old SAE no longer loads"
echo OK

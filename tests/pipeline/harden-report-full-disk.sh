#!/bin/bash
# issue 15: on a full disk sf-report leaves no truncated report.html or PNG: every output goes
# through a temp file + rename, so it is whole or absent (and an old one stays as it was).
# The full disk is `ulimit -f` with SIGXFSZ ignored: writes past the limit fail with EFBIG.
source "$SF_ROOT/tests/lib.sh"
J="$SF_ROOT/tests/data/report/transfer.json"
full() { (trap '' XFSZ; ulimit -f "$1"; shift; exec "$@"); }
sf-report "$J" -o old.html || die "sf-report failed"
cp old.html keep.html
[ "$(stat -c %s old.html)" -gt 40000 ] || die "report too small for the test"
full 32 sf-report "$J" -o new.html 2> err.txt; rc=$?
[ $rc = 1 ] || die "full disk: exit $rc, expected 1"
grep -qx 'sf-report: error: new.html: File too large' err.txt || die "message: $(cat err.txt)"
[ -e new.html ] && die "a partial new.html was left"
full 32 sf-report "$J" -o old.html 2> err.txt; rc=$?
[ $rc = 1 ] || die "full disk over an old report: exit $rc, expected 1"
cmp -s old.html keep.html || die "the old report was changed"
ls -a | grep -q 'tmp-' && die "temporary files left: $(ls -a | grep tmp-)"
if command -v rsvg-convert >/dev/null; then
  full 24 sf-report "$J" -o p.html --png png 2> err.txt; rc=$?
  [ $rc = 1 ] || die "--png on a full disk: exit $rc, expected 1 ($(cat err.txt))"
  [ -e p.html ] && die "report written although a PNG failed"
  for f in png/* png/.*; do
    case "$f" in png/.|png/..|'png/*'|'png/.*') continue ;; *.png) ;; *) die "left in png/: $f" ;; esac
    "$PY" "$SF_ROOT/tests/pipeline/report-png.py" "$f" > /dev/null || die "partial PNG $f"
  done
fi
echo OK

#!/bin/bash
# Whole-or-nothing outputs (a temp file renamed over -o) must not replace what is not a regular
# file: sf-reduce -o, sf-cat -o (JSON lines) and sf-report -o given a fifo write into it in place
# and leave it a fifo (renamed over, a fifo would become a file; run as root with -o /dev/null,
# /dev/null itself did: make bench's sf-report -o /dev/null), and /dev/null stays the character device.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"
through_fifo() { # NAME OUT CMD...: CMD writes -o the fifo; a reader copies it to OUT
  local name=$1 out=$2; shift 2
  rm -f o.fifo; mkfifo o.fifo
  timeout 20 cat o.fifo > "$out" & local rp=$!
  timeout 20 "$@" 2> err.txt || { kill $rp 2> /dev/null; die "$name: exit $?: $(cat err.txt)"; }
  wait $rp || die "$name: the fifo's reader got no end (exit $?)"
  [ -p o.fifo ] || die "$name: the fifo was replaced by a $(stat -c %F o.fifo)"
  [ -s "$out" ] || die "$name: nothing came through the fifo"
}
through_fifo "sf-reduce -o" r.json sf-reduce -q -i a.sf -o o.fifo
"$PY" -c 'import json; d = json.load(open("r.json")); assert d["saeflow"] and d["tokens"] > 0' || die "sf-reduce: not its JSON: $(head -c 200 r.json)"
through_fifo "sf-cat -o" a.jsonl sf-cat -i a.sf -o o.fifo
[ "$(sf-cat -i a.sf | cmp - a.jsonl && echo same)" = same ] || die "sf-cat: the fifo got other lines than stdout"
through_fifo "sf-report -o" rep.html sf-report -q r.json -o o.fifo
grep -q '</html>' rep.html || die "sf-report: no whole page through the fifo"
sf-reduce -q -i a.sf -o /dev/null || die "sf-reduce -o /dev/null failed"
sf-cat -i a.sf -o /dev/null || die "sf-cat -o /dev/null failed"
sf-report -q r.json -o /dev/null || die "sf-report -o /dev/null failed"   # bench-report.sh does this
[ -c /dev/null ] || die "/dev/null is no longer a character device"
echo "fifos and /dev/null written in place by sf-reduce, sf-cat and sf-report"

#!/bin/bash
# issue 15: a frame stream written to a file (-o FILE, FILE.zst) appears whole or not at all: a
# stage killed mid-stream, or one that fails (a truncated input, exit 3), leaves no file and no
# temp; an existing file stays byte-identical; a complete run produces it. Pipes keep the old
# rule (a failing stage closes its output without an end frame).
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf || die "acts"
n=$(stat -c %s a.sf); head -c $((n - 40)) a.sf > trunc.sf
no_leftovers() { # WHAT PATH: no PATH.tmp-* beside PATH
  ls "$2".tmp-* >/dev/null 2>&1 && die "$1: a temp file was left: $(ls "$2".tmp-*)"; true
}
for out in out.sf out.sf.zst; do
  # a truncated input: exit 3, no output at all
  rm -f "$out"
  sf-outliers --max-norm 3 -i trunc.sf -o "$out" 2>err.txt; rc=$?
  [ $rc = 3 ] || die "$out: truncated input: exit $rc, expected 3 ($(cat err.txt))"
  [ -e "$out" ] && die "$out: a truncated input left an output file"
  no_leftovers "$out truncated" "$out"
  # an existing file is left byte-identical by a failing run
  printf 'precious\n' > "$out"; cp "$out" keep.txt
  sf-outliers --max-norm 3 -i trunc.sf -o "$out" 2>/dev/null; rc=$?
  [ $rc = 3 ] || die "$out: over an existing file: exit $rc, expected 3"
  cmp -s "$out" keep.txt || die "$out: a failing run changed the existing file"
  no_leftovers "$out existing" "$out"
  # a complete run replaces it with the whole stream
  sf-outliers --max-norm 3 -i a.sf -o "$out" || die "$out: complete run failed"
  sf-cat --check -i "$out" >/dev/null || die "$out: the complete output does not check"
  no_leftovers "$out complete" "$out"
done
# killed mid-stream (SIGKILL and SIGTERM): the writer had written the header and frames
mkframes 3 | head -n 3 > part.jsonl
for sig in KILL TERM; do
  for out in k.sf k.sf.zst; do
    rm -f "$out"
    rm -f fifo; mkfifo fifo
    sf-cat --pack -i fifo -o "$out" & pid=$!
    exec 9>fifo; cat part.jsonl >&9
    sleep 0.5
    kill -$sig $pid || die "$out: the stage was not running when killed"
    wait $pid 2>/dev/null
    exec 9>&-
    [ -e "$out" ] && die "$out: a stage killed by SIG$sig left its output"
    no_leftovers "$out SIG$sig" "$out"
  done
done
# sf-cat --pack: lines that make a whole stream give a file (raw bytes carry their own end)
mkframes 2 | sf-cat --pack -o p.sf || die "pack -o"
sf-cat --check -i p.sf >/dev/null || die "pack -o: the file does not check"
# a fifo is written in place (not renamed over): a reader on it gets the stream
rm -f fifo; mkfifo fifo
sf-cat --summary -i fifo > fifo.txt & pid=$!
mkframes 2 | sf-cat --pack -o fifo || die "pack into a fifo"
wait $pid || die "reading the fifo"
[ "$(grep -c '^tokens' fifo.txt)" = 2 ] || die "fifo: $(cat fifo.txt)"
# pipes keep their rule: a failing stage's output is a truncated stream downstream (exit 3)
sf-outliers --max-norm 3 -i trunc.sf 2>/dev/null | sf-cat --summary >/dev/null 2>&1; rc=$?
[ $rc = 3 ] || die "pipe: downstream exit $rc, expected 3"
echo ok

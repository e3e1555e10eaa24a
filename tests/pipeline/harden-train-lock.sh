#!/usr/bin/env bash
# issue 15: pipelines/train.sh takes the output lock transfer.sh takes (OUT/.lock): while another
# run holds it, a second run into the same --out refuses (exit 1) naming the first; once it is
# free, the run goes on (here to fail later, on a model that is not there) and writes its own.
source "$SF_ROOT/tests/lib.sh"
command -v flock >/dev/null || skip "flock missing (util-linux)"
printf '{"text": "hello"}\n' > d.jsonl
mkdir out
printf 'pid 4242 on elsewhere, started 2026-01-01T00:00:00Z: transfer.sh\n' > out/.lock
( exec 8<>out/.lock; flock 8; exec sleep 30 ) & holder=$!
for _ in $(seq 50); do flock -n out/.lock true 2>/dev/null || break; sleep 0.1; done
"$SF_ROOT/pipelines/train.sh" --model nomodel --hook blocks.0.hook_resid_post --data d.jsonl --out out 2> err.txt; rc=$?
kill "$holder"; wait "$holder" 2>/dev/null
[ $rc = 1 ] || die "while locked: exit $rc, expected 1 ($(cat err.txt))"
grep -q "^train.sh: error: out: in use by another run (pid 4242 on elsewhere, started 2026-01-01T00:00:00Z: transfer.sh)" err.txt ||
  die "message: $(cat err.txt)"
"$SF_ROOT/pipelines/train.sh" --model nomodel --hook blocks.0.hook_resid_post --data d.jsonl --out out 2> err2.txt
grep -q "in use by another run" err2.txt && die "refused once the lock was free: $(cat err2.txt)"
grep -q "^pid [0-9]* on .*: train.sh$" out/.lock || die "train.sh did not write the lock: $(cat out/.lock)"
echo ok

#!/usr/bin/env bash
# issue 15: two pipelines/transfer.sh runs into the same --out: the second refuses (exit 1)
# while the first holds OUT/.lock, naming the first (its pid and start time); the first then
# finishes and its result.json is there. The first run's data comes through a fifo held open,
# so it is alive and waiting while the second one starts.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
command -v flock >/dev/null || skip "flock missing (util-linux)"
F=$SF_FIXTURES; M=$F/models
args=(--base "$M/stories260k" --finetune "$M/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
      --outlier-max-norm 50)
mkfifo data.jsonl
exec 7<>data.jsonl
head -20 "$F/data/stories.jsonl" >&7      # fits the pipe buffer: never blocks
"$SF_ROOT/pipelines/transfer.sh" "${args[@]}" --tokens 100000 --data data.jsonl --out out 2> err1.txt 7>&- &
pid=$!
for _ in $(seq 100); do grep -q "^pid $pid " out/.lock 2>/dev/null && break; sleep 0.1; done
grep -q "^pid $pid " out/.lock || { kill -TERM "$pid"; die "the first run wrote no lock: $(cat out/.lock 2>&1)"; }
"$SF_ROOT/pipelines/transfer.sh" "${args[@]}" --tokens 2048 --data "$F/data/stories.jsonl" --out out 2> err2.txt; rc=$?
kill -0 "$pid" 2>/dev/null || die "the first run ended early: $(cat err1.txt)"
exec 7>&-                                # EOF: the first run ends with the tokens it has
wait "$pid"; rc1=$?
[ $rc = 1 ] || die "second run: exit $rc, expected 1 ($(cat err2.txt))"
grep -q "^transfer.sh: error: out: in use by another run (pid $pid on .*, started 20[0-9-]*T[0-9:]*Z: transfer.sh)" err2.txt ||
  die "second run's message: $(cat err2.txt)"
[ $rc1 = 0 ] || die "first run: exit $rc1 ($(cat err1.txt))"
[ -s out/result.json ] && [ -s out/report.html ] || die "the first run's result is gone"
ls -A out | grep -q tmp && die "temporary files left: $(ls -A out)"
# the lock is free again once the first run has ended
"$SF_ROOT/pipelines/transfer.sh" "${args[@]}" --tokens 2048 --data "$F/data/stories.jsonl" --out out --no-report 2> err3.txt ||
  die "a later run refused: $(cat err3.txt)"
echo OK

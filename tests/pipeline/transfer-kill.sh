#!/usr/bin/env bash
# Kill a stage of pipelines/transfer.sh mid-run: the pipeline exits non-zero, names the killed
# stage, and leaves no process behind (every process of its session is gone).
# The data comes through a fifo that is never closed, so the stages are alive and waiting
# when sf-encode (finetune) is killed.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
command -v setsid >/dev/null || skip "setsid missing"
F=$SF_FIXTURES; M=$F/models
mkfifo data.jsonl
exec 7<>data.jsonl                       # keeps the fifo open for writing: no EOF
head -50 "$F/data/stories.jsonl" >&7
setsid "$SF_ROOT/pipelines/transfer.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-code" \
    --sae "$F/saes/stories260k-L2-relu" --data data.jsonl --tokens 100000 --outlier-max-norm 50 \
    --out out --no-report 2> err.txt &
pid=$!
victim=""
for _ in $(seq 100); do
  victim=$(pgrep -s "$pid" -f "sf-encode .*mark.finetune" | head -1)
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || { kill -TERM -- "-$pid" 2>/dev/null; die "sf-encode (finetune) never started"; }
sleep 0.3
kill -KILL "$victim"
rc=0
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { pkill -KILL -s "$pid"; die "transfer.sh still running 10 s after the kill"; }
wait "$pid" || rc=$?
exec 7>&-
cat err.txt
[ "$rc" != 0 ] || die "transfer.sh exited 0 after a stage was killed"
grep -q "transfer.sh: error: stage sf-encode (finetune) failed (killed by signal 9)" err.txt || die "the message does not name sf-encode (finetune)"
sleep 0.2
# zombies (Z) are already dead, only waiting for init to reap them
left=$(ps -e -o pid=,sid=,stat=,args= | awk -v s="$pid" '$2 == s && $3 !~ /^Z/')
[ -z "$left" ] || die "processes left behind: $left"
[ ! -e out/result.json ] || die "a result.json was written"
echo "exit $rc, no process left"

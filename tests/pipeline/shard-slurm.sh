#!/usr/bin/env bash
# pipelines/slurm.sh (issue 13) under a private single-node Slurm started here (munge, slurmctld,
# slurmd under the scratch dir, no systemd, proctrack/linuxproc, task/none, no accounting; all
# stopped at the end): stories260k (base vs ft-code, relu SAE, 16,384 tokens, 4 shards). Shard
# 1's sf-forward is killed mid-run: that task fails, the afterok merge is cancelled and no
# result.json appears; slurm.sh --resume resubmits shard 1 only, and the merged result equals the
# single pass within 1e-12 relative on every number. Skips (with the reason) where the packages
# (slurmctld slurmd slurm-client munge) cannot be installed or the daemons cannot start.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null || ! command -v sbatch > /dev/null; then
  [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge > apt.log 2>&1 ||
    skip "slurmctld, slurmd, slurm-client, munge not installed and cannot be installed here"
fi
S=$TMPDIR/slurm H=$(hostname -s)
mkdir -p "$S/munge" "$S/state" "$S/spool" && chmod 700 "$S/munge"
stop() { # the daemons this test started, by their pid files, and wait for them to end
  local f p i
  [ -n "${SLURM_CONF:-}" ] && scancel -u "$(id -un)" 2>/dev/null   # this private cluster's jobs
  for i in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  for f in "$S/slurmd.pid" "$S/slurmctld.pid" "$S/munge/munged.pid"; do
    [ -s "$f" ] || continue
    p=$(cat "$f"); kill "$p" 2>/dev/null || continue
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  return 0
}
trap stop EXIT
head -c 1024 /dev/urandom > "$S/munge/munge.key" && chmod 400 "$S/munge/munge.key"
munged --force --socket="$S/munge/munge.sock" --key-file="$S/munge/munge.key" --pid-file="$S/munge/munged.pid" \
    --log-file="$S/munge/munged.log" --seed-file="$S/munge/seed" 2> munged.err || skip "munged does not start: $(head -c 300 munged.err)"
P=$((20000 + RANDOM % 20000))
cat > "$S/slurm.conf" <<CONF
ClusterName=sftest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$P
SlurmdPort=$((P + 1))
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=$H NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$S/slurm.conf
slurmctld -i 2> ctld.err || skip "slurmctld does not start: $(head -c 300 ctld.err)"
slurmd 2> slurmd.err || skip "slurmd does not start: $(head -c 300 slurmd.err)"
for i in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -qx idle && break; sleep 0.5; done
sinfo -h -o %t 2>/dev/null | grep -qx idle || skip "the private Slurm node is not idle: $(sinfo 2>&1 | tail -2; tail -3 "$S/slurmd.log")"

F=$SF_FIXTURES
ARGS=(--base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
      --data "$F/data/stories.jsonl" --tokens 16384 --outlier-multiplier 2 --ablate)
transfer.sh "${ARGS[@]}" --no-report --out single 2>/dev/null || die "single pass failed"
# the build, with an sf-forward that holds shard 1 (while MARK exists) until it is killed
B=$TMPDIR/b; mkdir -p "$B/bin"; MARK=$TMPDIR/hold
for f in "$SF_BUILD"/bin/*; do ln -s "$f" "$B/bin/"; done
rm "$B/bin/sf-forward"
printf '#!/bin/bash\n[ "${SLURM_ARRAY_TASK_ID:-}" = 1 ] && [ -e %q ] && exec -a sf-forward-held sleep 300\nexec %q "$@"\n' \
    "$MARK" "$SF_BUILD/bin/sf-forward" > "$B/bin/sf-forward"
chmod +x "$B/bin/sf-forward"; touch "$MARK"
export SF_BUILD=$B
ids=$(slurm.sh --out st --shards 4 --limit 2 "${ARGS[@]}" 2> submit.err) || die "slurm.sh failed: $(cat submit.err)"
read -r AID MID <<< "$ids"
[ -n "$AID" ] && [ -n "$MID" ] || die "no job ids: $ids $(cat submit.err)"
wait_jobs() { # until none of the jobs is queued or running (90 s)
  local i; for i in $(seq 180); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.5; done
  die "jobs $1 still there: $(squeue 2>&1)"
}
victim=""
for i in $(seq 120); do   # shard 1's held sf-forward, found by its job environment
  for p in /proc/[0-9]*; do
    { tr '\0' '\n' < "$p/environ" | grep -qx "SLURM_ARRAY_JOB_ID=$AID"; } 2>/dev/null || continue
    { tr '\0' '\n' < "$p/environ" | grep -qx "SLURM_ARRAY_TASK_ID=1"; } 2>/dev/null || continue
    { tr '\0' ' ' < "$p/cmdline" | grep -q "^sf-forward-held "; } 2>/dev/null && victim="$victim ${p#/proc/}"
  done
  [ -n "$victim" ] && break; sleep 0.5
done
[ -n "$victim" ] || die "shard 1's sf-forward never ran: $(squeue 2>&1; cat st/slurm/shard-1.out 2>/dev/null)"
kill $victim 2>/dev/null   # the held sf-forward of each branch (the first kill may end the other)
wait_jobs "$AID,$MID"
[ ! -e st/result.json ] || die "the merge ran although shard 1 failed"
[ ! -e st/shards/1-of-4.json ] && [ -e st/shards/0-of-4.json ] && [ -e st/shards/3-of-4.json ] ||
  die "after the kill: $(ls st/shards; cat st/slurm/shard-1.out)"
grep -q "failed" st/slurm/shard-1.out || die "shard 1's log does not name the failure: $(cat st/slurm/shard-1.out)"
rm "$MARK"
ids=$(slurm.sh --out st --shards 4 --resume 2> resume.err) || die "slurm.sh --resume failed: $(cat resume.err)"
grep -q "shards 1 of 4: job array" resume.err || die "--resume did not resubmit shard 1 only: $(cat resume.err)"
read -r AID MID <<< "$ids"
wait_jobs "$AID,$MID"
[ -s st/result.json ] || die "no result after --resume: $(cat st/slurm/merge.out)"
"$PY" "$SF_ROOT/tests/pipeline/shard-compare.py" single/result.json st/result.json || die "the Slurm result differs from the single pass"
echo ok

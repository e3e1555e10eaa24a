#!/usr/bin/env bash
# pipelines/parallel.sh - a sharded transfer study run by GNU parallel, on this host or on several
# (-S) that share the output directory (issue 13; README "Scaling out").
#
#   plan (transfer.sh --plan OUT, here, once; skipped when OUT/study.json is given and no study
#   flags are) -> parallel: transfer.sh --from-plan OUT --shard K/N for K in 0..N-1 (--retries;
#   a shard already done with the plan's hash is skipped) -> transfer.sh --merge-plan OUT.
# A failed shard does not stop the others; the merge runs only when every shard succeeded; the
# same command again runs only the shards that are missing. GNU parallel's job log: OUT/parallel.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF2'
usage: pipelines/parallel.sh --out OUT --shards N [options] [STUDY FLAGS of transfer.sh...]

Runs the study planned in OUT/study.json (or plans it first from the transfer.sh study flags:
--base, --finetune, --sae, --data, --tokens, --outlier-..., --ablate, ...) as N shards with GNU
parallel, then merges them into OUT/result.json and OUT/report.html: the numbers of one pass.

  --out OUT            the study directory (on a filesystem every host sees, with -S)
  --shards N           number of shards (1 <= N <= the plan's frames)
  -j, --jobs J         shards at once per host (default: this host's cores / the plan's
                       cpus_per_shard, at least 1; with -S: 1)
  -S, --sshlogin HOSTS GNU parallel's --sshlogin (e.g. "8/node1,8/node2", ":" is this host); every
                       host needs this repository and its build at the same path
  --sshloginfile FILE  the hosts, one a line (GNU parallel's --sshloginfile)
  --retries R          run a failed shard up to R times (default 2)
  --threads T          threads per compute stage in each shard (default: the plan's)
  --title TEXT, --no-report    as transfer.sh
Exit codes: 0 ok; 1 a shard or the merge failed (named on stderr); 2 usage error.

examples:
  pipelines/parallel.sh --out study --shards 8 --base m/gemma-2b --finetune m/gemma-2b-python \
      --sae saes/gemma-2b-res --data code.jsonl --ctx 1024 --rows 5 --tokens 256000 \
      --outlier-norm-scalar 0.31279 --outlier-multiplier 2 --ablate --threads 4
  pipelines/parallel.sh --out /shared/study --shards 16 -S 2/node1,2/node2,2/node3 --retries 3
EOF2
}

OUT="" N="" JOBS="" HOSTS=() RETRIES=2 THREADS="" TITLE=() REPORT=() PLANARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --shards) N=${2:?}; shift 2 ;;
    -j|--jobs) JOBS=${2:?}; shift 2 ;;
    -S|--sshlogin) HOSTS+=(--sshlogin "${2:?}"); shift 2 ;;
    --sshloginfile) HOSTS+=(--sshloginfile "${2:?}"); shift 2 ;;
    --retries) RETRIES=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; PLANARGS+=(--threads "$2"); shift 2 ;;
    --title) TITLE=(--title "${2:?}"); shift 2 ;;
    --no-report) REPORT=(--no-report); shift ;;
    -h|--help) usage; exit 0 ;;
    *) PLANARGS+=("$1"); shift ;;
  esac
done
[ -n "$OUT" ] && [ -n "$N" ] || sf_usage_error "--out and --shards are required"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--shards $N: not a positive integer"
[[ "$RETRIES" =~ ^[0-9]+$ ]] || sf_usage_error "--retries $RETRIES: not a count"
[ -z "$JOBS" ] || [[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--jobs $JOBS: not a positive integer"
command -v parallel > /dev/null || {
  echo "parallel.sh: error: GNU parallel is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }

sf_plan_prepare   # lib.sh: OUT absolute, the plan written or checked, FRAMES, THREADS
if [ -z "$JOBS" ]; then
  if [ ${#HOSTS[@]} -gt 0 ]; then JOBS=1; else
    CPUS=$(sf_json_get "$OUT/study.json" resources.cpus_per_shard 2>/dev/null || echo 1)
    JOBS=$(( $(nproc) / (CPUS > 0 ? CPUS : 1) )); [ "$JOBS" -ge 1 ] || JOBS=1
  fi
fi

ENVS=(); [ -z "${SF_BUILD:-}" ] || ENVS=(--env SF_BUILD)
echo "parallel.sh: $N shards of $OUT/study.json, $JOBS at once${HOSTS:+ per host}, up to $RETRIES retries" >&2
rc=0
parallel --will-cite --quote --halt never --retries "$((RETRIES + 1))" -j "$JOBS" "${HOSTS[@]}" "${ENVS[@]}" \
    --joblog "$OUT/parallel.log" --tagstring "shard {}/$N" \
    "$HERE/transfer.sh" --from-plan "$OUT" --shard "{}/$N" --threads "$THREADS" ::: $(seq 0 $((N - 1))) || rc=$?
if [ "$rc" != 0 ]; then
  echo "parallel.sh: error: $rc of $N shards failed (GNU parallel's log: $OUT/parallel.log); the same command runs only the missing ones" >&2
  exit 1
fi
exec "$HERE/transfer.sh" --merge-plan "$OUT" --shards "$N" "${TITLE[@]}" "${REPORT[@]}"

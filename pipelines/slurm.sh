#!/usr/bin/env bash
# pipelines/slurm.sh - a sharded transfer study as a Slurm job array, merged by an afterok job
# (issue 13; README "Scaling out").
#
#   plan (transfer.sh --plan OUT, here, when study flags are given) -> sbatch --array=0-(N-1)%LIMIT
#   --requeue: task K runs transfer.sh --from-plan OUT --shard K/N (CPUs and memory per task from
#   the plan's resources) -> sbatch --dependency=afterok:ARRAY --kill-on-invalid-dep=yes: the merge
#   and the report. A failed task cancels the merge; --resume submits only the shards whose result
#   is missing (finished ones keep theirs) and a new merge. OUT must be on a filesystem the nodes
#   share, and the repository and its build at the same path on every node.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF2'
usage: pipelines/slurm.sh --out OUT --shards N [options] [STUDY FLAGS of transfer.sh...]

Submits the study planned in OUT/study.json (or plans it first, on this host, from the transfer.sh
study flags: --base, --finetune, --sae, --data, --tokens, --outlier-..., --ablate, ...) as a job
array of N shards and a merge job that runs when all of them succeeded; prints the job ids and
where the result will be (OUT/result.json, OUT/report.html). Job logs: OUT/slurm/.

  --out OUT            the study directory, on a filesystem every node sees
  --shards N           number of shards (1 <= N <= the plan's frames)
  --limit P            at most P shards at once (the array's %P; default N)
  --resume             submit only the shards without a result of this plan, and the merge
  --threads T          threads per compute stage (default: the plan's); a task gets 2*T CPUs
  --mem MB             memory per task (default: the plan's mem_mb_per_shard)
  --partition P, --time T, --account A     passed to sbatch
  --sbatch-arg ARG     any other sbatch flag (repeatable)
  --title TEXT, --no-report    as transfer.sh
Exit codes: 0 submitted (or nothing left to do); 1 planning or sbatch failed; 2 usage error.

examples:
  pipelines/slurm.sh --out /shared/gemma --shards 16 --limit 8 --time 4:00:00 --base m/gemma-2b \
      --finetune m/gemma-2b-python --sae saes/gemma-2b-res --data code.jsonl --ctx 1024 --rows 5 \
      --tokens 256000 --outlier-norm-scalar 0.31279 --outlier-multiplier 2 --ablate --threads 4
  pipelines/slurm.sh --out /shared/gemma --shards 16 --resume      # after a failed shard
EOF2
}

OUT="" N="" LIMIT="" RESUME="" THREADS="" MEM="" SB=() TITLE=() REPORT=() PLANARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --shards) N=${2:?}; shift 2 ;;
    --limit) LIMIT=${2:?}; shift 2 ;;
    --resume) RESUME=1; shift ;;
    --threads) THREADS=${2:?}; PLANARGS+=(--threads "$2"); shift 2 ;;
    --mem) MEM=${2:?}; shift 2 ;;
    --partition|--time|--account) SB+=("$1=${2:?}"); shift 2 ;;
    --sbatch-arg) SB+=("${2:?}"); shift 2 ;;
    --title) TITLE=(--title "${2:?}"); shift 2 ;;
    --no-report) REPORT=(--no-report); shift ;;
    -h|--help) usage; exit 0 ;;
    *) PLANARGS+=("$1"); shift ;;
  esac
done
[ -n "$OUT" ] && [ -n "$N" ] || sf_usage_error "--out and --shards are required"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--shards $N: not a positive integer"
[ -z "$LIMIT" ] || [[ "$LIMIT" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--limit $LIMIT: not a positive integer"
[ -z "$MEM" ] || [[ "$MEM" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--mem $MEM: megabytes, a positive integer"
command -v sbatch > /dev/null || { echo "slurm.sh: error: sbatch not found (Debian: slurm-client)" >&2; exit 1; }

sf_plan_prepare   # lib.sh: OUT absolute, the plan written or checked, FRAMES, THREADS
H=$(sf_json_get "$OUT/study.json" plan_hash)
[ -n "$MEM" ] || MEM=$(sf_json_get "$OUT/study.json" resources.mem_mb_per_shard 2>/dev/null || echo 2048)

# the shards to submit: all, or (--resume) those without a result of this plan
TODO=()
for ((k = 0; k < N; k++)); do
  f=$OUT/shards/$k-of-$N.json
  if [ -n "$RESUME" ] && sf_shard_done "$f" "$H"; then continue; fi
  TODO+=("$k")
done
mkdir -p "$OUT/slurm"
BUILD_LINE=""   # the job runs in OUT: a relative SF_BUILD would name another folder there
[ -z "${SF_BUILD:-}" ] || BUILD_LINE="export SF_BUILD=$(printf '%q' "$(cd "$SF_BUILD" && pwd)")"
cat > "$OUT/slurm/shard.sh" <<EOF2
#!/usr/bin/env bash
# task K of the array: shard K/$N of $OUT/study.json (written by pipelines/slurm.sh)
$BUILD_LINE
exec $(printf '%q' "$HERE/transfer.sh") --from-plan $(printf '%q' "$OUT") --shard "\$SLURM_ARRAY_TASK_ID/$N" --threads $THREADS
EOF2
EXTRA=""; [ $((${#TITLE[@]} + ${#REPORT[@]})) = 0 ] || EXTRA=$(printf '%q ' "${TITLE[@]}" "${REPORT[@]}")
cat > "$OUT/slurm/merge.sh" <<EOF2
#!/usr/bin/env bash
# the merge of the $N shards of $OUT/study.json (written by pipelines/slurm.sh)
$BUILD_LINE
exec $(printf '%q' "$HERE/transfer.sh") --merge-plan $(printf '%q' "$OUT") --shards $N $EXTRA
EOF2
chmod +x "$OUT/slurm/shard.sh" "$OUT/slurm/merge.sh"

DEP=()
if [ ${#TODO[@]} -gt 0 ]; then
  LIST=$(IFS=,; echo "${TODO[*]}")
  AID=$(sbatch --parsable --job-name "sf-shards" --array "$LIST%${LIMIT:-$N}" --requeue \
        --cpus-per-task "$((2 * THREADS))" --mem "${MEM}M" --chdir "$OUT" \
        --output "$OUT/slurm/shard-%a.out" "${SB[@]}" "$OUT/slurm/shard.sh") ||
    { echo "slurm.sh: error: sbatch (the shards) failed" >&2; exit 1; }
  AID=${AID%%;*}
  DEP=(--dependency "afterok:$AID" --kill-on-invalid-dep=yes)
  echo "slurm.sh: shards ${LIST} of $N: job array $AID" >&2
else
  echo "slurm.sh: every shard of $N has its result; submitting the merge only" >&2
fi
MID=$(sbatch --parsable --job-name "sf-merge" "${DEP[@]}" --cpus-per-task 1 --mem "${MEM}M" --chdir "$OUT" \
      --output "$OUT/slurm/merge.out" "${SB[@]}" "$OUT/slurm/merge.sh") ||
  { echo "slurm.sh: error: sbatch (the merge) failed" >&2; exit 1; }
MID=${MID%%;*}
printf '%s shards %s merge %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${AID:-none}" "$MID" >> "$OUT/slurm/jobs"
echo "slurm.sh: merge: job $MID; the result will be $OUT/result.json (logs: $OUT/slurm/)" >&2
echo "${AID:-} $MID"

# pipelines/lib.sh - sourced by the pipelines: run stages as supervised background jobs.
#
#   sf_setup PROG          temp dir $SF_TMP (fifos live there), traps, job control
#   sf_usage_error MSG     "PROG: error: MSG" and a hint to pipelines/PROG --help on stderr;
#                          exit 2 (PROG: the script's name until sf_setup names it)
#   sf_fifo NAME...        mkfifo $SF_TMP/NAME...
#   sf_stage NAME CMD...   start CMD in the background in its own process group, named NAME
#                          (SF_VERBOSE=1: print its command line first)
#   sf_wait_all            wait for every stage started since the last sf_wait_all; at the
#                          first failure stop all the others; prints "PROG: error: stage NAME
#                          failed (exit N)" naming the stage that caused it and returns its
#                          code (1 for a signal). Stages started after it form a new batch.
#   sf_cfg_get FILE KEY    a scalar of a flat JSON file (cfg.json, config.json), unquoted
#   sf_lock DIR [NAME]     hold DIR/NAME (default .lock; flock, fd 9) until the script and its
#                          stages end; if another run holds it: "PROG: error: DIR: in use by ..."
#                          naming that run (pid, host, start time, as it wrote them) and exit 1
#   sf_dir_hash DIR        sha256 over DIR's *.json, *.safetensors and tokenizer.model files
#                          (names and contents; one hex line)
#   sf_files_hash FILE...  sha256 over the files' contents, in order (one hex line)
#   sf_json_get FILE PATH  the value at a dotted PATH (a.b.c) of a JSON file (strings unquoted,
#                          numbers as written); fails when absent
#   sf_plan_vars FILE      the settings of a study plan as shell assignments P_KEY=VALUE (arrays
#                          as P_KEY=(...)), for eval
#   sf_study_flag ARGS...  one of the study flags transfer.sh, sweep.sh and split.sh share (--base,
#                          --finetune, --data FILE..., --tokens, --ctx, --bos/--no-bos, --rows,
#                          --outlier-max-norm/-multiplier/-estimate, --ablate, --threads,
#                          --title, --no-report, -v) into its variable (BASE, FT, DATA, ...);
#                          SF_SHIFT = the words it took, 0 when ARGS[0] is none of them
#   sf_shard_done FILE H   FILE is a shard result of the plan whose hash is H (resume: skip it)
#   sf_plan_verify PLAN WHO KEY PATH...   PATH (a directory: sf_dir_hash; files: sf_files_hash)
#                          still has the plan's settings.KEY_sha256, else "PROG: error: WHO: the
#                          KEY (PATH) is not what the plan hashed ..." and exit 1
# Stage bodies (CMD of sf_stage; IN and OUT are files or fifos):
#   sf_tee IN OUT...       copy stream IN to every OUT
#   sf_zstd IN OUT         zstd-compress IN into OUT
#   sf_header IN OUT       the header frame of stream IN as a JSON line (sf-cat) in OUT; the
#                          rest of IN is read and dropped, so its writer never sees a closed pipe
#
# Which stage is named: the first one (in start order) whose code is not 0, 3 (its input was
# truncated because something upstream failed) or 141 (SIGPIPE: something downstream
# failed) and that was not stopped by our SIGTERM (143); if there is none, the first one that
# ended non-zero.
# Every stage runs in its own process group (set -m), so stopping one stops what it started;
# on exit (normal, error, Ctrl-C) every group still running is stopped and $SF_TMP removed.

# the stages: build/bin (or $SF_BUILD/bin, another build dir) first on PATH
SF_BIN=${SF_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}/bin
[ -d "$SF_BIN" ] && PATH="$SF_BIN:$PATH"

SF_PIDS=() SF_NAMES=()
declare -A SF_RC=() SF_KILLED=()
SF_PROG=$(basename "$0")

sf_setup() {
  SF_PROG=$1
  SF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/saeflow.XXXXXX")
  trap 'sf_cleanup' EXIT
  trap 'echo "$SF_PROG: interrupted" >&2; exit 130' INT TERM HUP
}

sf_usage_error() {
  echo "$SF_PROG: error: $*" >&2
  echo "try 'pipelines/$SF_PROG --help'" >&2
  exit 2
}

sf_cleanup() {
  local pid
  for pid in "${SF_PIDS[@]}"; do
    [ -n "${SF_RC[$pid]:-}" ] || kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${SF_PIDS[@]}"; do
    [ -n "${SF_RC[$pid]:-}" ] || wait "$pid" 2>/dev/null || true
  done
  [ -n "${SF_TMP:-}" ] && rm -rf "$SF_TMP"
  return 0
}

sf_fifo() { local f; for f in "$@"; do mkfifo "$SF_TMP/$f"; done; }

sf_stage() {
  local name=$1; shift
  [ -n "${SF_VERBOSE:-}" ] && echo "$SF_PROG: start $name: $*" >&2
  set -m                  # job control on: the job gets its own process group
  "$@" &
  SF_PIDS+=("$!"); SF_NAMES+=("$name")
  set +m                  # and off again: no "Terminated" job notices on stderr
}

sf_name_of() { local i; for i in "${!SF_PIDS[@]}"; do [ "${SF_PIDS[$i]}" = "$1" ] && { echo "${SF_NAMES[$i]}"; return; }; done; echo "?"; }

sf_wait_all() {
  local left=0 pid rc first="" p
  for pid in "${SF_PIDS[@]}"; do [ -n "${SF_RC[$pid]:-}" ] || left=$((left + 1)); done
  while [ "$left" -gt 0 ]; do
    local running=()
    for p in "${SF_PIDS[@]}"; do [ -n "${SF_RC[$p]:-}" ] || running+=("$p"); done
    pid=""
    wait -n -p pid "${running[@]}" 2>/dev/null; rc=$?
    [ -n "${pid:-}" ] || break        # nothing left to wait for
    [ -n "${SF_RC[$pid]:-}" ] && continue
    SF_RC[$pid]=$rc; left=$((left - 1))
    if [ "$rc" != 0 ] && [ -z "$first" ]; then
      first=$pid
      # 3 (truncated input) and 141 (SIGPIPE) are echoes of a failure elsewhere: give the
      # stage that caused it a moment to end with its own code before stopping everything
      case "$rc" in 3|141) sleep 0.5 ;; esac
      for p in "${SF_PIDS[@]}"; do
        [ -n "${SF_RC[$p]:-}" ] && continue
        SF_KILLED[$p]=1; kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
      done
    fi
  done
  rc=0
  [ -z "$first" ] || sf_blame "$first" || rc=$?
  SF_PIDS=(); SF_NAMES=(); SF_RC=(); SF_KILLED=()    # every stage has ended: a new batch
  return "$rc"
}

sf_blame() { # FIRST (the first stage that ended non-zero): names the culprit, returns its code
  local culprit="" i p rc
  for i in "${!SF_PIDS[@]}"; do
    p=${SF_PIDS[$i]}; rc=${SF_RC[$p]:-0}
    case "$rc" in 0|3|141) continue ;; esac
    [ -n "${SF_KILLED[$p]:-}" ] && [ "$rc" = 143 ] && continue
    culprit=$p; break
  done
  [ -n "$culprit" ] || culprit=$1
  rc=${SF_RC[$culprit]}
  local why="exit $rc"
  [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128))"
  echo "$SF_PROG: error: stage $(sf_name_of "$culprit") failed ($why)" >&2
  [ "$rc" -ge 1 ] && [ "$rc" -le 3 ] && return "$rc"
  return 1
}

sf_lock() { # DIR [NAME]
  local lock="$1/${2:-.lock}" who
  exec 9<>"$lock" || { echo "$SF_PROG: error: $lock: cannot open the lock file" >&2; exit 1; }
  if ! flock -n 9; then
    who=$(head -c 300 "$lock" 2>/dev/null | tr -d '\n')
    echo "$SF_PROG: error: $1: in use by another run (${who:-its pid not written yet}); wait for it or use another output" >&2
    exit 1
  fi
  printf 'pid %s on %s, started %s: %s\n' "$$" "$(hostname 2>/dev/null || echo ?)" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SF_PROG" > "$lock"
}

sf_cfg_get() { # FILE KEY: the value of "KEY": ... in a JSON file (strings unquoted)
  local v
  v=$(tr -d '\n' < "$1" | grep -o "\"$2\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|[^,}]*\)" | head -1 |
      sed -e "s/^\"$2\"[[:space:]]*:[[:space:]]*//" -e 's/^"//' -e 's/"$//' -e 's/[[:space:]]*$//')
  printf '%s' "$v"
}

sf_tee() { local in=$1; shift; tee "${@:2}" < "$in" > "$1"; }

sf_zstd() { zstd -q -c < "$1" > "$2"; }

sf_header() { # IN OUT
  local rc=0
  { sf-cat --head 0 > "$2" || rc=$?; cat > /dev/null; } < "$1"
  return "$rc"
}


sf_dir_hash() { # DIR
  ( cd "$1" && find . -maxdepth 1 -type f \( -name '*.json' -o -name '*.safetensors' -o -name tokenizer.model \) \
      -printf '%P\n' | LC_ALL=C sort | xargs -r -d '\n' sha256sum ) | sha256sum | cut -d' ' -f1
}

sf_files_hash() { # FILE...
  cat -- "$@" | sha256sum | cut -d' ' -f1
}

sf_json_get() { # FILE PATH
  python3 -c '
import json, sys
try:
    v = json.load(open(sys.argv[1]), parse_float=str)
    for k in sys.argv[2].split("."): v = v[k]
except (OSError, ValueError, KeyError, TypeError): sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}

sf_plan_vars() { # FILE
  python3 -c '
import json, shlex, sys
try: s = json.load(open(sys.argv[1]), parse_float=str)["settings"]
except (OSError, ValueError, KeyError, TypeError) as e: sys.exit("%s: not a study plan (%s)" % (sys.argv[1], e))
for k, v in s.items():
    k = "P_" + "".join(c if c.isalnum() else "_" for c in k)
    if isinstance(v, list): print(k + "=(" + " ".join(shlex.quote(str(x)) for x in v) + ")")
    elif isinstance(v, bool): print(k + "=" + ("true" if v else "false"))
    else: print(k + "=" + shlex.quote("" if v is None else str(v)))' "$1"
}

sf_study_flag() {
  SF_SHIFT=2
  case "$1" in
    --base) BASE=${2:?} ;;
    --finetune) FT=${2:?} ;;
    --data) SF_SHIFT=1; shift
            while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do DATA+=("$1"); shift; SF_SHIFT=$((SF_SHIFT + 1)); done ;;
    --tokens) TOKENS=${2:?} ;;
    --ctx) CTX=${2:?} ;;
    --bos) BOS=true; SF_SHIFT=1 ;;
    --no-bos) BOS=false; SF_SHIFT=1 ;;
    --rows) ROWS=${2:?} ;;
    --outlier-max-norm) MAXNORM=${2:?} ;;
    --outlier-multiplier) MULT=${2:?} ;;
    --outlier-estimate) EST=${2:?} ;;
    --ablate) ABLATE=--ablate; SF_SHIFT=1 ;;
    --threads) THREADS=${2:?} ;;
    --title) TITLE=${2:?} ;;
    --no-report) REPORT=""; SF_SHIFT=1 ;;
    -v) SF_VERBOSE=1; SF_SHIFT=1 ;;
    *) SF_SHIFT=0 ;;
  esac
}

sf_shard_done() { [ -f "$1" ] && [ "$(sf_json_get "$1" partial.shard.plan_hash 2>/dev/null)" = "$2" ]; }

sf_plan_verify() { # PLAN WHO KEY PATH...
  local plan=$1 who=$2 key=$3 want got; shift 3
  want=$(sf_json_get "$plan" "settings.${key}_sha256") || return 0
  if [ -d "$1" ]; then got=$(sf_dir_hash "$1"); else got=$(sf_files_hash "$@"); fi
  [ "$got" = "$want" ] && return 0
  echo "$SF_PROG: error: $who: the $key ($*) is not what the plan hashed (sha256 ${got:0:12}, the plan has ${want:0:12}): it changed since, or this host has another copy" >&2
  exit 1
}

# sf_plan_prepare: for the shard runners (parallel.sh, slurm.sh), after their option parsing.
# Uses OUT, N, PLANARGS (study flags, or only --threads T) and THREADS of the caller: makes OUT
# absolute, writes the plan when study flags were given (transfer.sh --plan), checks the plan and
# N against its frames; sets FRAMES, and THREADS from the plan when not given.
sf_plan_prepare() {
  mkdir -p "$OUT" || exit 1
  OUT=$(cd "$OUT" && pwd)
  if [ ${#PLANARGS[@]} -gt 0 ] && ! { [ ${#PLANARGS[@]} = 2 ] && [ "${PLANARGS[0]}" = --threads ]; }; then
    "$(dirname "${BASH_SOURCE[0]}")/transfer.sh" --plan "$OUT" "${PLANARGS[@]}" || exit $?
  fi
  [ -r "$OUT/study.json" ] || sf_usage_error "$OUT/study.json: no plan; give the study flags (--base ... --data ...) or run transfer.sh --plan first"
  FRAMES=$(sf_json_get "$OUT/study.json" settings.frames) || { echo "$SF_PROG: error: $OUT/study.json: not a plan" >&2; exit 1; }
  [ "$N" -le "$FRAMES" ] || sf_usage_error "--shards $N: the plan has only $FRAMES frames"
  [ -n "$THREADS" ] || THREADS=$(sf_json_get "$OUT/study.json" resources.threads 2>/dev/null || echo 1)
  [[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || sf_usage_error "--threads $THREADS: not a positive integer"
}

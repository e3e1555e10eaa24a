# pipelines/lib.sh - sourced by the pipelines: run stages as supervised background jobs.
#
#   sf_setup PROG          temp dir $SF_TMP (fifos live there), traps, job control
#   sf_fifo NAME...        mkfifo $SF_TMP/NAME...
#   sf_stage NAME CMD...   start CMD in the background in its own process group, named NAME
#   sf_wait_all            wait for every stage; at the first failure stop all the others;
#                          prints "PROG: error: stage NAME failed (exit N)" naming the stage
#                          that caused it and returns its code (1 for a signal)
#   sf_cfg_get FILE KEY    a scalar of a flat JSON file (cfg.json, config.json), unquoted
#
# Which stage is named: the first one (in start order) whose code is not 0, 3 (its input was
# truncated because something upstream failed) or 141 (SIGPIPE: something downstream
# failed) and that was not stopped by our SIGTERM (143); if there is none, the first one that
# ended non-zero.
# Every stage runs in its own process group (set -m), so stopping one stops what it started;
# on exit (normal, error, Ctrl-C) every group still running is stopped and $SF_TMP removed.

SF_PIDS=() SF_NAMES=()
declare -A SF_RC=() SF_KILLED=()

sf_setup() {
  SF_PROG=$1
  SF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/saeflow.XXXXXX")
  trap 'sf_cleanup' EXIT
  trap 'echo "$SF_PROG: interrupted" >&2; exit 130' INT TERM HUP
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
  [ -z "$first" ] && return 0
  local culprit="" i
  for i in "${!SF_PIDS[@]}"; do
    p=${SF_PIDS[$i]}; rc=${SF_RC[$p]:-0}
    case "$rc" in 0|3|141) continue ;; esac
    [ -n "${SF_KILLED[$p]:-}" ] && [ "$rc" = 143 ] && continue
    culprit=$p; break
  done
  [ -n "$culprit" ] || culprit=$first
  rc=${SF_RC[$culprit]}
  local why="exit $rc"
  [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128))"
  echo "$SF_PROG: error: stage $(sf_name_of "$culprit") failed ($why)" >&2
  [ "$rc" -ge 1 ] && [ "$rc" -le 3 ] && return "$rc"
  return 1
}

sf_cfg_get() { # FILE KEY: the value of "KEY": ... in a JSON file (strings unquoted)
  local v
  v=$(tr -d '\n' < "$1" | grep -o "\"$2\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|[^,}]*\)" | head -1 |
      sed -e "s/^\"$2\"[[:space:]]*:[[:space:]]*//" -e 's/^"//' -e 's/"$//' -e 's/[[:space:]]*$//')
  printf '%s' "$v"
}

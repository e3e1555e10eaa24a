#!/usr/bin/env bash
# run.sh - the human entry point. Installs missing dependencies, builds, then:
#   ./run.sh                 run the embedded demo study end to end, print where the report is
#   ./run.sh study ARGS...   run a real study (pipelines/transfer.sh ARGS...)
#   ./run.sh test            run the test suite (make test)
#   ./run.sh NAME ARGS...    run pipelines/NAME.sh
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
bash scripts/install-deps.sh
make -s -j"$(nproc)" all >&2
cmd=${1:-demo}; [ $# -gt 0 ] && shift
case "$cmd" in
  test)  exec make -s test ;;
  study) exec pipelines/transfer.sh "$@" ;;
  demo)  exec pipelines/demo.sh "$@" ;;
  *)     [ -x "pipelines/$cmd.sh" ] || { echo "run.sh: error: unknown command '$cmd' (try: demo, study, test)" >&2; exit 2; }
         exec "pipelines/$cmd.sh" "$@" ;;
esac

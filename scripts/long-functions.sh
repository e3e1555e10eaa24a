#!/usr/bin/env bash
# scripts/long-functions.sh [MAX] [FILE...] - lists C functions longer than MAX lines (default 80)
# in stages/ and proto/, as FILE:LINE NAME LINES. A function is exempt when the comment just
# above it says why it is long: a line containing "long:" (e.g. "/* long: one straight-line
# template; split, it would read worse */"). Exit 1 when any function is listed.
# Functions are found the way this code base writes them: the body opens with "{" alone at
# column 0 and closes with "}" at column 0.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-80}; [ $# -gt 0 ] && shift
files=("$@")
[ ${#files[@]} -gt 0 ] || mapfile -t files < <(find stages proto -name '*.c' -o -name '*.cc' | sort)
awk -v max="$max" '
  FNR == 1 { sig = ""; note = 0; start = 0; hist = "" }
  /^\{/ && start == 0 { start = FNR; name = sig; exempt = note; next }
  /^\}/ && start > 0 {
    n = FNR - start - 1
    if (n > max && !exempt) { printf "%s:%d %s %d\n", FILENAME, start, name, n; bad = 1 }
    start = 0; note = 0; next
  }
  start == 0 {
    if ($0 ~ /long:/) note = 1
    if ($0 ~ /^[A-Za-z_].*\(/) { s = $0; sub(/\(.*/, "", s); k = split(s, w, /[ *]+/); sig = w[k] }
    if ($0 ~ /^$/) note = 0
  }
  END { exit bad }
' "${files[@]}"

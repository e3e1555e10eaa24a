#!/bin/bash
# report-check.sh [REPORT.html] [OUT.png] - look at an sf-report in a real browser.
# Renders the report in headless Chromium (installs Debian's chromium on demand: too big for
# scripts/install-deps.sh and CI), screenshots it at 1400x4000 and checks the PNG is not blank
# (many distinct colours, a fair share of non-white pixels; SF_REPORT_WINDOW=W,H sets the size).
# Without REPORT, renders the test fixtures' two-study report first. Exit 0 ok, 1 blank/failed render.
set -u
absp() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
rep=${1:+$(absp "$1")}
png=$(absp "${2:-${TMPDIR:-/tmp}/sf-report-check.png}")
cd "$(dirname "$0")/.." || exit 1
SF_ROOT=$(pwd)
BUILD=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
if [ -z "$rep" ]; then
  rep=${TMPDIR:-/tmp}/sf-report-check.html
  "$BUILD/bin/sf-report" tests/data/report/transfer.json tests/data/report/transfer-bad.json -o "$rep" || exit 1
fi
if ! command -v chromium >/dev/null; then
  echo "report-check: installing chromium (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null || {
    echo "report-check: error: chromium: apt-get install failed" >&2; exit 1; }
fi
rm -f "$png"
timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$png" \
  --window-size="${SF_REPORT_WINDOW:-1400,4000}" "file://$rep" >/dev/null 2>"${png%.png}.log"
[ -s "$png" ] || { echo "report-check: error: $png: no screenshot (see ${png%.png}.log)" >&2; exit 1; }
out=$("$PY" tests/pipeline/report-png.py --min-colours 32 "$png") || { echo "report-check: error: blank screenshot: $out" >&2; exit 1; }
frac=${out##*non-white=}
"$PY" -c "import sys; sys.exit(0 if float('$frac') > 0.05 else 1)" || { echo "report-check: error: mostly white: $out" >&2; exit 1; }
echo "report-check: ok: $out"

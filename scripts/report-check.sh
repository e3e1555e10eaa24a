#!/bin/bash
# report-check.sh [REPORT.html] [OUT.png] - look at an sf-report in a real browser.
# Renders the report in headless Chromium (scripts/install-deps.sh installs Debian's chromium;
# installed here on demand when missing) and checks, after the page has loaded:
#   - the DOM (chromium --dump-dom, kept as OUT.dom.html) holds every <svg id> of the report's
#     source, and the verdict and summary elements
#   - no console message at all (the report has no script: any message is an error; the log is
#     OUT.log)
#   - a screenshot at 1400x4000 (SF_REPORT_WINDOW=W,H sets the size) is not blank: many distinct
#     colours, a fair share of non-white pixels
# Without REPORT, renders the test fixtures' two-study report first. Exit 0 ok, 1 failed check.
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
CHROME=(timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0)
dom=${png%.png}.dom.html log=${png%.png}.log
rm -f "$png" "$dom"
"${CHROME[@]}" --dump-dom "file://$rep" >"$dom" 2>"$log"
"${CHROME[@]}" --screenshot="$png" --window-size="${SF_REPORT_WINDOW:-1400,4000}" "file://$rep" >/dev/null 2>>"$log"
if grep -q ':CONSOLE' "$log"; then
  echo "report-check: error: console messages:" >&2; grep ':CONSOLE' "$log" >&2; exit 1
fi
"$PY" - "$rep" "$dom" <<'EOF' || exit 1
import re, sys
src, dom = open(sys.argv[1]).read(), open(sys.argv[2]).read()
want = re.findall(r'<svg[^>]* id="([^"]+)"', src) + ["summary"] + re.findall(r' id="(verdict-\d+)"', src)
have = set(re.findall(r' id="([^"]+)"', dom))
miss = [i for i in want if i not in have]
if not dom.strip() or miss:
    print("report-check: error: not in the DOM after load: %s" % (miss[:10] or "the whole page"), file=sys.stderr); sys.exit(1)
print("report-check: DOM ok: %d plots" % len(re.findall(r"<svg\b", dom)), file=sys.stderr)
EOF
[ -s "$png" ] || { echo "report-check: error: $png: no screenshot (see $log)" >&2; exit 1; }
out=$("$PY" tests/pipeline/report-png.py --min-colours 32 "$png") || { echo "report-check: error: blank screenshot: $out" >&2; exit 1; }
frac=${out##*non-white=}
"$PY" -c "import sys; sys.exit(0 if float('$frac') > 0.05 else 1)" || { echo "report-check: error: mostly white: $out" >&2; exit 1; }
echo "report-check: ok: $out"

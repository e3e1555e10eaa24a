#!/bin/bash
# sf-report looked at in a real browser: headless Chromium screenshots the two-study fixture
# report (a 1400x1000 window, to stay quick) and the PNG is not blank. Skips when chromium is not
# installed (scripts/report-check.sh installs it on demand; too big for CI's install-deps).
source "$SF_ROOT/tests/lib.sh"
command -v chromium >/dev/null || skip "chromium not installed (scripts/report-check.sh installs it)"
sf-report "$SF_ROOT/tests/data/report/transfer.json" "$SF_ROOT/tests/data/report/transfer-bad.json" -o rep.html || die "sf-report failed"
SF_REPORT_WINDOW=1400,1000 PY="$PY" TMPDIR=$PWD "$SF_ROOT/scripts/report-check.sh" rep.html shot.png || die "blank or failed render"

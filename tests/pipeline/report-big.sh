#!/bin/bash
# sf-report at d_sae 65536 (binned density scatter and parallel coordinates): the HTML stays
# under 10 MB and its SVGs are well-formed. (Its time is measured in bench/bench-report.sh.)
source "$SF_ROOT/tests/lib.sh"
need_py numpy
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
"$PY" "$SF_ROOT/tests/data/report/make-fixtures.py" . 65536 || die "generator failed"
sf-report big.json -o big.html || die "sf-report failed"
size=$(stat -c %s big.html)
[ "$size" -lt 10000000 ] || die "HTML of d_sae 65536 is $size bytes (>= 10 MB)"
"$PY" - <<'PY' || exit 1
import re, subprocess, sys
h = open("big.html").read()
for s in re.findall(r"<svg\b.*?</svg>", h, re.S):
    p = subprocess.run(["xmllint", "--noout", "-"], input=s.encode(), capture_output=True)
    if p.returncode: sys.exit("FAIL: svg not well-formed")
if "2-D histogram" not in h or "binned 0.25" not in h: sys.exit("FAIL: 65536 features not drawn binned")
PY
echo "OK: $size bytes"

#!/bin/bash
# sf-report looked at in a real browser (scripts/report-check.sh): the README's stories260k
# two-study report (ft-mild and ft-code, --outlier-multiplier 2, 8,192 tokens each) rendered by
# headless Chromium: after load the DOM holds every plot id of both studies (the documented list,
# written out here), the warnings, summary and verdicts; no console message; the screenshot
# (1400x1000, to stay quick) is not blank. Without the fixtures, the test data's two-study report.
# scripts/install-deps.sh installs chromium; it skips only when chromium is missing outside CI
# (with CI set it fails).
source "$SF_ROOT/tests/lib.sh"
need_chromium
F=${SF_FIXTURES:-}
if [ -n "$F" ] && [ -d "$F/models/stories260k" ]; then
  for ft in mild code; do
    "$SF_ROOT/pipelines/transfer.sh" --base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-$ft" \
        --sae "$F/saes/stories260k-L2-relu" --data "$F/data/stories.jsonl" --tokens 8192 --outlier-multiplier 2 \
        --ablate --no-report --out "study-$ft" >/dev/null 2>&1 || die "transfer.sh ft-$ft failed"
  done
  sf-report study-mild/result.json study-code/result.json -o rep.html || die "sf-report failed"
  extra=warnings
else
  sf-report "$SF_ROOT/tests/data/report/transfer.json" "$SF_ROOT/tests/data/report/transfer-bad.json" -o rep.html || die "sf-report failed"
  extra=
fi
SF_REPORT_WINDOW=1400,1000 PY="$PY" TMPDIR=$PWD "$SF_ROOT/scripts/report-check.sh" rep.html shot.png 2>check.log ||
  { cat check.log; die "report-check failed"; }
"$PY" - shot.dom.html $extra <<'EOF' || exit 1
import re, sys
dom = open(sys.argv[1]).read()
have = set(re.findall(r' id="([^"]+)"', dom))
want = ["summary", "provenance", "verdict-1", "verdict-2"] + sys.argv[2:]
for S in (1, 2):
    want += ["plot-%d-sim-%s-%s" % (S, q, k) for q in ("cos", "l2") for k in ("hist", "pos", "row")]
    want += ["plot-%d-%s-%s" % (S, m, k) for m in ("base", "finetune") for k in ("act-hist", "density-hist", "norm-hist")]
    want += ["plot-%d-transfer-%s" % (S, k) for k in ("density-scatter", "density-parallel", "err-dead-base", "err-dead-finetune", "act-sim", "logit-sim")]
miss = [w for w in want if w not in have]
if miss: print("FAIL: not in the DOM after load:", miss); sys.exit(1)
EOF
echo "OK: $(grep -o '<svg' shot.dom.html | wc -l) plots in the DOM, no console message; $(tail -1 check.log)"

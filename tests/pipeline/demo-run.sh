#!/usr/bin/env bash
# pipelines/demo.sh end to end with small budgets: the report is written, and the mild
# finetune keeps the demo SAE working better (sf-report's verdicts: transfers / does not) than the strong one (higher global cosine, higher
# finetune explained variance, higher regular-feature activation similarity).
source "$SF_ROOT/tests/lib.sh"
need_py json
"$SF_ROOT/pipelines/demo.sh" --out demo --tokens 4096 --train-tokens 16384 > out.txt || die "demo.sh failed"
cat out.txt
grep -q "report: demo/report.html" out.txt || die "demo.sh did not say where the report is"
[ -s demo/report.html ] || die "demo/report.html missing"
grep -q 'id="verdict-1">.*<b>SAE transfers (' demo/report.html || die "the report has no 'SAE transfers' verdict (mild)"
# the strong finetune's norms grow: ~10% of its tokens are outliers under the base's rule, so CE
# spliced and R² are not trusted, and the verdict says what the feature figures alone say
grep -q 'id="verdict-2">.*<b>undetermined: [0-9.]*% of the finetune tokens are outliers.*by its features alone (activation similarity, density r) it does not transfer' demo/report.html ||
  die "the report has no 'undetermined ... by its features alone it does not transfer' verdict (strong)"
"$PY" - <<'PY' || die "mild vs strong"
import json
m, s = (json.load(open(f'demo/{k}/result.json')) for k in ['mild', 'strong'])
row = lambda r: (r['similarity']['cos_mean'], r['finetune']['explained_variance'], r['transfer']['activation_similarity']['mean'])
print('cos, finetune EV, activation similarity: mild %.3f %.3f %.3f, strong %.3f %.3f %.3f' % (row(m) + row(s)))
assert all(a > b for a, b in zip(row(m), row(s)))
PY

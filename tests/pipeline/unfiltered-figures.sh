#!/usr/bin/env bash
# Figures with the seed's outlier filtering and without any (issue 16): with an outlier rule, the
# result also has ce_delta_unfiltered, ce_spliced_unfiltered,
# kl_spliced_unfiltered, r2_pooled_unfiltered, explained_variance_unfiltered, mse_unfiltered,
# cos_recon_unfiltered, l2_ratio_unfiltered (the SAE spliced in at every token, outliers too);
# they equal the plain figures of the same study run with no outlier rule (1e-12), and on the
# base (no outlier among these tokens) they equal the filtered ones.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models
STUDY=(--base "$M/stories260k" --finetune "$M/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
       --data "$F/data/stories.jsonl" --tokens 8192 --ablate --no-report)
"$SF_ROOT/pipelines/transfer.sh" "${STUDY[@]}" --outlier-multiplier 2 --out rule 2> rule.err || { cat rule.err; die "with the rule"; }
"$SF_ROOT/pipelines/transfer.sh" "${STUDY[@]}" --out none 2> none.err || { cat none.err; die "without a rule"; }
"$PY" - <<'PY' || exit 1
import json, math, sys
r, n = json.load(open("rule/result.json")), json.load(open("none/result.json"))
keys = ["ce_spliced", "kl_spliced", "ce_delta", "r2_pooled", "explained_variance", "mse", "cos_recon", "l2_ratio"]
bad = []
for m in ("base", "finetune"):
    for k in keys:
        u = r[m].get(k + "_unfiltered")
        if u is None: bad.append(f"{m}.{k}_unfiltered missing"); continue
        if not math.isclose(u, n[m][k], rel_tol=1e-12, abs_tol=1e-12): bad.append(f"{m}.{k}_unfiltered {u} vs no rule {n[m][k]}")
if r["finetune"]["outlier_fraction"] < 0.3: bad.append("ft-code should have many outliers under m=2")
if r["base"]["outlier_fraction"] != 0: bad.append("the base has outliers: the equality check below needs none")
for k in keys:
    if not math.isclose(r["base"][k + "_unfiltered"], r["base"][k], rel_tol=1e-12): bad.append(f"base {k}: filtered and unfiltered differ")
if not r["finetune"]["ce_delta_unfiltered"] > r["finetune"]["ce_delta"]: bad.append("ft-code: splicing the outliers too should cost more")
print("ft-code ce_delta %.4f filtered, %.4f unfiltered; r2 %.4f / %.4f" % (r["finetune"]["ce_delta"], r["finetune"]["ce_delta_unfiltered"],
      r["finetune"]["r2_pooled"], r["finetune"]["r2_pooled_unfiltered"]))
if bad: print("FAIL:", *bad, sep="\n  "); sys.exit(1)
PY
# the report labels both: the rows "..., no outlier filtering" with the rule, none without one
sf-report -o rule.html rule/result.json && sf-report -o none.html none/result.json || die "sf-report failed"
for l in "CE delta, no outlier filtering" "R² pooled, no outlier filtering" "explained variance, no outlier filtering"; do
  [ "$(grep -c "<tr><td>$l" rule.html)" -ge 1 ] || die "no row '$l' in the report with an outlier rule"
  ! grep -q "<tr><td>$l" none.html || die "a row '$l' in the report without an outlier rule"
done

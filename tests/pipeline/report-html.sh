#!/bin/bash
# sf-report: a two-study report (good and broken transfer, d_sae 512) is well-formed HTML whose
# every <svg> passes xmllint, holds every documented plot id, and prints every table value as
# numpy/python formats it from the JSON (independently of the C code), with the right verdicts.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
D="$SF_ROOT/tests/data/report"
sf-report "$D/transfer.json" "$D/transfer-bad.json" -o rep.html || die "sf-report failed"
"$PY" - "$D/transfer.json" "$D/transfer-bad.json" <<'PY' || exit 1
import json, re, sys
import sfstream
html = open("rep.html").read()
fail = sfstream.xml_problems("rep.html")   # every <svg> well-formed, the page's tags balanced
ids = re.findall(r'<svg[^>]* id="([^"]+)"', html)
want = []
for S in (1, 2):
    want += ["plot-%d-sim-%s-%s" % (S, q, k) for q in ("cos", "l2") for k in ("hist", "pos", "row")]
    want += ["plot-%d-%s-%s" % (S, m, k) for m in ("base", "finetune") for k in ("act-hist", "density-hist", "norm-hist")]
    want += ["plot-%d-transfer-%s" % (S, k) for k in ("density-scatter", "density-parallel", "err-dead-base", "err-dead-finetune", "act-sim", "logit-sim")]
    want += ["plot-%d-sim-cos-hist-full" % S] + ["plot-%d-overlay-%s" % (S, k) for k in ("act-hist", "density-hist", "norm-hist")]
want += ["plot-compare-%s" % k for k in ("act-sim-cdf", "density-r", "ce-recovered", "l0")]
for w in want:
    if w not in ids: fail.append("plot id %s missing" % w)
if len(ids) != len(set(ids)): fail.append("duplicate ids")
if len(ids) != len(want): fail.append("%d plots, expected %d" % (len(ids), len(want)))
summary = html[html.index('<table id="summary">'):html.index("</table>")]
cells = re.findall(r"<td[^>]*>([^<]*)</td>", summary)
def f4(v): return "%.4f" % v
def pct(v): return "%.2f%%" % (100 * v)
for path in sys.argv[1:]:
    d = json.load(open(path))
    for m in ("base", "finetune"):
        b = d[m]
        for k in ("l0", "ce_clean", "ce_spliced", "ce_delta", "ce_recovered", "kl_spliced", "r2_pooled", "explained_variance"):
            if f4(b[k]) not in cells: fail.append("%s %s %s: %s not in the summary" % (path, m, k, f4(b[k])))
        if pct(b["dead_fraction"]) not in cells: fail.append("%s dead %% %s" % (m, pct(b["dead_fraction"])))
        dead = sum(1 for x in b["log_density"] if x <= -9)
        if str(dead) not in cells: fail.append("%s dead count %d (from log_density)" % (m, dead))
        if str(b["outliers"]) not in cells: fail.append("%s outliers" % m)
        if pct(b["outlier_fraction"]) not in cells: fail.append("%s outlier %%" % m)
    s, t = d["similarity"], d["transfer"]
    for v in (s["cos_mean"], s["l2_mean"], t["density_pearson"], t["activation_similarity"]["mean"], t["logit_similarity"]["mean"],
              t["activation_error_dead_base"]["mean"], t["unembed_frobenius_ratio"]):
        if f4(v) not in cells: fail.append("%s: %s not in the summary" % (path, f4(v)))
    a = [x for x in t["activation_similarity"]["values"] if x is not None]
    if pct(sum(x > 0.8 for x in a) / len(a)) not in cells: fail.append("frac_above_0.8")
    for k in ("dead_only_base", "dead_only_finetune", "regular_count"):
        if str(t[k]) not in cells: fail.append("%s %s" % (path, k))
# the density r printed on the scatter: numpy's corrcoef of the two log_density arrays
import numpy as np
d = json.load(open(sys.argv[1]))
r = np.corrcoef(d["base"]["log_density"], d["finetune"]["log_density"])[0, 1]
if "r = %.4f" % r not in html: fail.append("scatter r = %.4f missing" % r)
# dead count annotated on the density histogram, zero count on the activation histogram
if "dead features (log10 density &lt;= -9): %d" % sum(1 for x in d["base"]["log_density"] if x <= -9) not in html: fail.append("dead annotation")
if "zero activations: %d" % d["base"]["act_log10_hist"]["zeros"] not in html: fail.append("zeros annotation")
if "outlier threshold 200.0" not in html: fail.append("threshold line label")
# verdicts: study 1 transfers (ratio 0.16/0.15 <= 1.5, sim >= 0.9, r >= 0.8), study 2 breaks (ratio 28 > 3)
if not re.search(r'<li class="ok" id="verdict-1">[^\n]*SAE transfers \(CE delta ratio 1\.07', html): fail.append("verdict 1")
if not re.search(r'<li class="bad" id="verdict-2">[^\n]*SAE does not transfer', html): fail.append("verdict 2")
# provenance footer
for w in ("Mistral-7B-v0.1", "MetaMath-Mistral-7B", "sf-forward 0.1.0", "--hook blocks.8.hook_resid_pre", "sf-reduce 0.1.0"):
    if w not in html[html.index('<footer id="provenance">'):]: fail.append("provenance: " + w)
if re.search(r"https?://(?!www\.w3\.org/2000/svg)", html): fail.append("a network reference")
# one script, inline (no src, no external resource), at the end of the body
if len(re.findall(r"<script\b", html)) != 1 or not re.search(r"<script>\(function\(\)\{.*?\}\)\(\);</script>\n</body>", html, re.S): fail.append("script: not one inline script")
for f in fail: print("FAIL:", f)
sys.exit(1 if fail else 0)
PY
echo "OK: $(grep -o '<svg' rep.html | wc -l) well-formed plots, table values and verdicts match"

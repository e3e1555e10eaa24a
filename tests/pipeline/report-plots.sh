#!/usr/bin/env bash
# sf-report's plot defects of issue 16, on the two-study fixture with edits that trigger each:
#   - ticks: per axis one label format and no label twice (a finetune activation histogram with
#     counts up to 212,345 once gave "2e+05, 2e+05, 1e+05, ..., 80000")
#   - every logit similarity equal to 1: the x axis stays at or below 1 and says so
#   - parallel coordinates: the legend sits right of the finetune axis, off the bands
#   - an empty set (no feature dead only in the finetune): "no features in this set", no axes
#   - every <svg> is role="img" with an aria-label and a <title>, and well-formed (xmllint)
#   - print CSS (figures and tables never split, headings not stranded) and a dark-mode CSS
source "$SF_ROOT/tests/lib.sh"
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
D="$SF_ROOT/tests/data/report"
"$PY" - "$D/transfer.json" <<'EOF' || die "editing the fixture failed"
import json, sys
d = json.load(open(sys.argv[1]))
h = d["finetune"]["act_log10_hist"]
top = max(h["counts"])
h["counts"] = [round(c * 212345 / top) for c in h["counts"]]
lg = d["transfer"]["logit_similarity"]
lg["values"] = [1.0] * len(lg["values"]); lg["mean"] = 1.0
json.dump(d, open("edited.json", "w"))
EOF
sf-report edited.json "$D/transfer-bad.json" -o rep.html || die "sf-report failed"
"$PY" - <<'EOF' || exit 1
import re, subprocess, sys
html = open("rep.html").read()
fail = []
svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
if len(svgs) != 48: fail.append("%d plots, expected 48 (18 per study, 4 compared)" % len(svgs))
def shape(lbl):   # the label's format: digits -> 0, sign dropped ("250k" -> "0k", "0.25" -> "0.0")
    return re.sub(r"\d+", "0", re.sub(r"e[+-]", "e", lbl).replace("-", ""))
for s in svgs:
    pid = re.search(r' id="([^"]+)"', s).group(1)
    p = subprocess.run(["xmllint", "--noout", "-"], input=s.encode(), capture_output=True)
    if p.returncode: fail.append("%s: not well-formed: %s" % (pid, p.stderr.decode()[:200]))
    head = s[:s.index(">")]
    if 'role="img"' not in head: fail.append(pid + ": no role=img")
    al = re.search(r'aria-label="([^"]+)"', head)
    if not al: fail.append(pid + ": no aria-label")
    if not re.search(r"<title>[^<]+</title>", s): fail.append(pid + ": no <title>")
    for cls in ("xt", "yt"):
        labels = re.findall(r'<text class="%s"[^>]*>([^<]*)</text>' % cls, s)
        if len(labels) != len(set(labels)): fail.append("%s %s ticks repeat: %s" % (pid, cls, labels))
        nz = [l for l in labels if l != "0"]
        if len({shape(l) for l in nz}) > 1: fail.append("%s %s ticks mix formats: %s" % (pid, cls, labels))
        if any("e+" in l for l in labels) and cls == "yt" and "act-hist" in pid: fail.append("%s: e+ ticks %s" % (pid, labels))
# the histogram with counts to 212,345: ticks in k
y = re.findall(r'<text class="yt"[^>]*>([^<]*)</text>', re.search(r'<svg[^>]*id="plot-1-finetune-act-hist".*?</svg>', html, re.S).group(0))
if "200k" not in y: fail.append("finetune act-hist y ticks %s (want ...200k...)" % y)
# logit similarity all 1: x ticks <= 1, and the note
lg = re.search(r'<svg[^>]*id="plot-1-transfer-logit-sim".*?</svg>', html, re.S).group(0)
xs = [float(v) for v in re.findall(r'<text class="xt"[^>]*>([^<]*)</text>', lg)]
if not xs or max(xs) > 1 + 1e-9: fail.append("logit-sim x ticks %s (every value is 1)" % xs)
if "every value is 1" not in lg: fail.append("logit-sim: no 'every value is 1' note")
# parallel coordinates: legend right of the finetune axis
for S in (1, 2):
    pc = re.search(r'<svg[^>]*id="plot-%d-transfer-density-parallel".*?</svg>' % S, html, re.S).group(0)
    axes = [float(x) for x in re.findall(r'<line x1="([\d.]+)" y1="\d+" x2="[\d.]+" y2="\d+" stroke="#000" stroke-width="2"/>', pc)]
    leg = [float(x) for x in re.findall(r'<text class="legend" x="([\d.]+)"', pc)]
    if len(axes) != 2 or len(leg) < 3 or min(leg) <= max(axes): fail.append("parallel %d: legend x %s vs axes %s" % (S, leg, axes))
# the empty set
em = re.search(r'<svg[^>]*id="plot-1-transfer-err-dead-finetune".*?</svg>', html, re.S).group(0)
if "no features in this set" not in em or 'class="yt"' in em: fail.append("empty set plot: " + em[:300])
# CSS
css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
pr = re.search(r"@media print\{(.*?\})\}", css)
if not pr or not re.search(r"figure[^{]*\{[^}]*break-inside:avoid", pr.group(1)) or "break-after:avoid" not in pr.group(1):
    fail.append("print CSS: " + (pr.group(1) if pr else "none"))
if not re.search(r"@media \(prefers-color-scheme:\s*dark\)\{body\{background:#[0-9a-f]+", css): fail.append("no dark-mode CSS")
p = subprocess.run(["xmllint", "--html", "--noout", "rep.html"], capture_output=True)
if p.returncode: fail.append("xmllint --html: " + p.stderr.decode()[:300])
for f in fail: print("FAIL:", f)
sys.exit(1 if fail else 0)
EOF
echo "OK: ticks, equal values, legend, empty sets, accessible SVGs, print and dark CSS"

#!/bin/bash
# sf-report on a sweep document (proto/PROTOCOL.md §5 "Sweeps"), built from real stage outputs by
# tests/sweepdoc.py: the similarity profile of stories260k vs ft-code at every hook (sf-forward
# --hook all, sf-compare | sf-reduce), the --weights-only deviation, and three transfer.sh studies
# (the L2 ReLU SAE at its hook; copies of the fixture SAEs with cfg.json moved to blocks.1 and
# blocks.3, so the layer axis has three depths; 8,192 tokens, --ablate). Checks, against the JSON:
# every sweep plot id and only those; every <svg> well-formed (xmllint) and the page too; one
# heatmap row per profile hook in network order, each with min(ctx, 128) cells; one profile dot
# per hook; one table row per study in depth order whose figures are the results' ("%.4f" / counts)
# and whose verdict is word for word the single-study report's; the Pearson r of the per-layer mean
# weight deviation and 1 - cos at blocks.L.hook_resid_post as numpy computes it; --help mentions
# sweeps; a sweep with another input is refused (exit 2); a sweep with its parts missing still
# renders every plot id. With chromium: the page loads with no console message and every id in
# the DOM (scripts/report-check.sh).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
F=$SF_FIXTURES
[ -d "$F/models/stories260k-ft-code" ] || skip "stories260k fixtures missing"
B=$F/models/stories260k FT=$F/models/stories260k-ft-code

sf-tokenize --tokenizer "$B" --ctx 128 --rows 8 --max-tokens 8192 "$F/data/stories.jsonl" -q -o tok.sf || die "sf-tokenize"
sf-forward --model "$B" --hook all -q -i tok.sf -o ab.sf || die "sf-forward base"
sf-forward --model "$FT" --hook all -q -i tok.sf -o af.sf || die "sf-forward finetune"
sf-compare --base ab.sf --finetune af.sf -q | sf-reduce -q > profile.json || die "profile (sf-compare | sf-reduce)"
sf-reduce --weights-only --base-model "$B" --finetune-model "$FT" > wdev.json || die "sf-reduce --weights-only"

# SAEs at three hooks: the fixture's own (blocks.2) and copies moved to blocks.1 and blocks.3
mksae() { # SRC LAYER DEST
  cp -r "$F/saes/$1" "$3" && "$PY" - "$3/cfg.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); L = int(sys.argv[2])
c["hook_name"] = "blocks.%d.hook_resid_post" % L; c["hook_layer"] = L
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}
mksae stories260k-L2-topk 1 sae-L1-topk || die "sae copy"
mksae stories260k-L2-relu 3 sae-L3-relu || die "sae copy"
for s in "$F/saes/stories260k-L2-relu" sae-L1-topk sae-L3-relu; do
  n=$(basename "$s")
  "$SF_ROOT/pipelines/transfer.sh" --base "$B" --finetune "$FT" --sae "$s" --data "$F/data/stories.jsonl" \
      --tokens 8192 --ctx 128 --ablate --no-report --out "studies/$n" >"$n.log" 2>&1 || { tail -5 "$n.log"; die "transfer.sh $n"; }
done
"$PY" "$SF_ROOT/tests/sweepdoc.py" --profile profile.json --weights wdev.json --title "sweep <test> & co" \
    studies/stories260k-L2-relu studies/sae-L1-topk studies/sae-L3-relu > sweep.json || die "sweepdoc.py"
sf-report sweep.json -o rep.html || die "sf-report failed on the sweep"
for k in 0 1 2; do   # the single-study reports, whose verdicts the sweep table must repeat
  d=$("$PY" -c "import json,sys; print(json.load(open('sweep.json'))['studies'][$k]['dir'])")
  sf-report "studies/$d/result.json" -o "single-$k.html" || die "sf-report on study $d"
done

"$PY" - <<'PY' || exit 1
import html as H, json, re
import sfstream
import numpy as np
doc = json.load(open("sweep.json"))
page = open("rep.html").read()
fail = sfstream.xml_problems("rep.html")
ids = re.findall(r'<svg[^>]* id="([^"]+)"', page)
want = ["plot-sweep-profile", "plot-sweep-profile-l2", "plot-sweep-heatmap", "plot-sweep-wdev"] + \
       ["plot-sweep-metrics-" + m for m in ("l0", "ce-delta", "ce-recovered", "ev", "dead", "density-r", "density-r-live", "act-sim")]
if ids != want: fail.append("plot ids %s, expected %s" % (ids, want))
def svg(i):
    m = re.search(r'<svg[^>]* id="%s".*?</svg>' % i, page, re.S)
    return m.group(0) if m else ""
hooks = [h["hook"] for h in doc["profile"]["hooks"]]
if len(hooks) != 6: fail.append("stories260k --hook all: %d hooks, expected 6" % len(hooks))
# heatmap: one row per profile hook, in network order, min(ctx, 128) cells each
rows = re.findall(r'<g class="hm-row" data-hook="([^"]*)">(.*?)</g>', svg("plot-sweep-heatmap"), re.S)
if [r[0] for r in rows] != hooks: fail.append("heatmap rows %s != profile hooks %s" % ([r[0] for r in rows], hooks))
for name, body in rows:
    n = body.count("<rect")
    if n != min(doc["ctx"], 128): fail.append("heatmap row %s: %d cells" % (name, n))
# profile: a dot per hook titled with its hook and value
prof = svg("plot-sweep-profile")
for h in doc["profile"]["hooks"]:
    t = "%s, mean cos: %.4g</title>" % (h["hook"], h["similarity"]["cos_mean"])
    if t not in prof: fail.append("profile dot missing: " + t)
if prof.count('class="pt"') != len(hooks): fail.append("profile: %d dots" % prof.count('class="pt"'))
# Pearson r: per-layer mean weight deviation vs 1 - cos at blocks.L.hook_resid_post
cos = {h["hook"]: h["similarity"]["cos_mean"] for h in doc["profile"]["hooks"]}
pairs = [(e["mean"], 1 - cos["blocks.%d.hook_resid_post" % e["layer"]]) for e in doc["weight_deviation"]["by_layer"]
         if "blocks.%d.hook_resid_post" % e["layer"] in cos]
if len(pairs) != 5: fail.append("%d layer pairs, expected 5" % len(pairs))
r = np.corrcoef(np.array(pairs).T)[0, 1]
para = re.search(r'<p id="sweep-wdev-r">(.*?)</p>', page, re.S)
if not para or "r = %.4f</b> over %d layers" % (r, len(pairs)) not in para.group(1): fail.append("Pearson r %.4f not in sweep-wdev-r" % r)
if "r(mean, 1 - cos) = %.4f" % r not in svg("plot-sweep-wdev"): fail.append("r not noted on plot-sweep-wdev")
if svg("plot-sweep-wdev").count('class="pt"') != 3 * 5: fail.append("wdev: expected 15 dots (mean, max, 1 - cos x 5 layers)")
# the table: a row per study in depth order, the results' figures, the single-study verdicts
trs = re.findall(r'<tr class="sweep-row" data-hook="([^"]*)">(.*?)</tr>', page, re.S)
st = doc["studies"]
if [t[0] for t in trs] != [s["hook"] for s in st]: fail.append("table rows %s" % [t[0] for t in trs])
if [s["depth"] for s in st] != [2, 3, 4]: fail.append("study depths %s" % [s["depth"] for s in st])
f4 = lambda v: "%.4f" % v
def live_r(b, f):   # density Pearson r over features live in both (log10 density > -9)
    lb, lf = np.array(b["log_density"], float), np.array(f["log_density"], float)
    m = (lb > -9) & (lf > -9)
    return np.corrcoef(lb[m], lf[m])[0, 1]
for k, ((hook, body), s) in enumerate(zip(trs, st)):
    cells = re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
    res = s["result"]; b, f, t = res["base"], res["finetune"], res["transfer"]
    exp = [f4(b["l0"]), f4(f["l0"]), f4(b["ce_spliced"] - b["ce_clean"]), f4(f["ce_spliced"] - f["ce_clean"]),
           f4(b["ce_recovered"]), f4(f["ce_recovered"]), f4(b["explained_variance"]), f4(f["explained_variance"]),
           "%d" % b["dead_count"], "%d" % f["dead_count"], f4(t["density_pearson"]), f4(live_r(b, f)),
           f4(t["activation_similarity"]["mean"])]
    if cells[1] != str(s["depth"]): fail.append("%s: depth cell %s" % (hook, cells[1]))
    if cells[3:16] != exp: fail.append("%s: figures %s, expected %s" % (hook, cells[3:16], exp))
    v = re.search(r'<td class="verdict (\w+)"><b>(.*?)</b>(.*?)</td>', body, re.S)
    one = re.search(r'<li class="(\w+)" id="verdict-1">[^<]*<b>(.*?)</b>', open("single-%d.html" % k).read())
    if not v or not one or (v.group(1), v.group(2) + v.group(3)) != (one.group(1), one.group(2)):
        fail.append("%s: verdict %s differs from the single-study report's %s" % (hook, v and v.groups(), one and one.groups()))
    if not re.search(r"(transfers|does not transfer|undetermined)", v.group(2) if v else ""): fail.append("%s: no verdict word" % hook)
    if 'id="sweep-study-%d"' % (k + 1) not in page or 'id="metrics-%d"' % (k + 1) not in page: fail.append("summary %d" % (k + 1))
# per-model metric plots: base and finetune dots per study; study-wide ones one per study
for m, n in (("l0", 6), ("ce-delta", 6), ("dead", 6), ("density-r", 3), ("density-r-live", 3), ("act-sim", 3)):
    c = svg("plot-sweep-metrics-" + m).count('class="pt"')
    if c != n: fail.append("plot-sweep-metrics-%s: %d dots, expected %d" % (m, c, n))
if "<title>sweep &lt;test&gt; &amp; co</title>" not in page: fail.append("title from the document, escaped")
if re.search(r"https?://(?!www\.w3\.org/2000/svg)", page): fail.append("a network reference")
if len(re.findall(r"<script\b", page)) != 1 or re.search(r"<script[^>]*\bsrc=", page): fail.append("script: not one inline script")
for x in fail: print("FAIL:", x)
raise SystemExit(1 if fail else 0)
PY

sf-report --help | grep -q saeflow_sweep || die "--help does not mention sweeps"
sf-report sweep.json studies/sae-L1-topk/result.json -o mixed.html 2>mixed.err; rc=$?
[ $rc = 2 ] && [ "$(wc -l < mixed.err)" = 1 ] || die "a sweep with another input: exit $rc, $(cat mixed.err)"
echo '{"saeflow_sweep": 1, "studies": [{"hook": "blocks.1.hook_resid_post", "result": null}], "profile": {"hooks": [{}]}}' > holes.json
sf-report holes.json -o holes.html || die "sf-report failed on a sweep with holes"
[ "$(grep -o '<svg[^>]* id="plot-sweep-[a-z0-9-]*"' holes.html | wc -l)" = 12 ] || die "holes: not every plot id"
grep -q 'class="sweep-row" data-hook="blocks.1.hook_resid_post"' holes.html || die "holes: the study's row"

if command -v chromium >/dev/null; then
  SF_REPORT_WINDOW=1400,1000 PY="$PY" TMPDIR=$PWD BUILD="$SF_BUILD" "$SF_ROOT/scripts/report-check.sh" rep.html shot.png 2>check.log ||
    { cat check.log; die "report-check failed"; }
  for i in plot-sweep-profile plot-sweep-heatmap plot-sweep-wdev plot-sweep-metrics-l0 sweep-table sweep-wdev-r provenance; do
    grep -q " id=\"$i\"" shot.dom.html || die "$i not in the DOM after load"
  done
  chrom="; chromium: $(tail -1 check.log)"
else
  [ -n "${CI:-}" ] && die "chromium not installed (scripts/install-deps.sh installs it)"
  chrom="; chromium not installed: browser check skipped"
fi
echo "OK: $(grep -c 'class="hm-row"' rep.html) heatmap rows, $(grep -c 'class="sweep-row"' rep.html) study rows, verdicts as the single reports$chrom"

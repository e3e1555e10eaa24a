#!/bin/bash
# sf-report's navigation and data items of issue 16 on a real two-study report (stories260k vs
# ft-mild and vs ft-code, relu SAE, 8,192 tokens each, transfer.sh; without the fixtures the test
# data's two-study report):
#   - contents (nav id toc): one link per section heading (h2/h3) and per plot, each exactly
#     once, each to an id on the page
#   - a CSV per plot: a "CSV" link whose href is a data: URI (text/csv, percent-encoded) named
#     after the plot; every one parses; the cosine histogram (zoomed and full), the density
#     scatter, the density overlay, the weight deviation by layer and the compared studies' CDF and
#     bars equal the numbers of result.json
#   - the cosine histogram zoomed to its non-empty bins, the full -1..1 one in a <details>
#   - the density r over live features (log10 density > -9 in both) equals numpy's corrcoef over
#     the same arrays, in the summary table and on the scatter
#   - base and finetune overlaid (activation, density, norm histograms), both models' bars in one plot
#   - several studies compared: the CDF, density r, CE recovered and L0 plots
source "$SF_ROOT/tests/lib.sh"
need_py numpy
F=${SF_FIXTURES:-}
if [ -n "$F" ] && [ -d "$F/models/stories260k" ]; then
  for ft in mild code; do
    "$SF_ROOT/pipelines/transfer.sh" --base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-$ft" \
        --sae "$F/saes/stories260k-L2-relu" --data "$F/data/stories.jsonl" --tokens 8192 --ablate \
        --no-report --out "study-$ft" >/dev/null 2>&1 || die "transfer.sh ft-$ft failed"
  done
  A=study-mild/result.json B=study-code/result.json
else
  A="$SF_ROOT/tests/data/report/transfer.json" B="$SF_ROOT/tests/data/report/transfer-bad.json"
fi
sf-report "$A" "$B" -o rep.html || die "sf-report failed"
"$PY" - "$A" "$B" <<'PY' || exit 1
import csv, io, json, re, sys, urllib.parse
import numpy as np
html = open("rep.html").read()
docs = [json.load(open(p)) for p in sys.argv[1:]]
fail = []
nav = re.search(r'<nav id="toc"[^>]*>(.*?)</nav>', html, re.S)
if not nav: sys.exit("FAIL: no contents (nav id toc)")
body = html[nav.end():]
hrefs = re.findall(r'<a href="#([^"]+)"', nav.group(1))
heads = re.findall(r'<h[23] id="([^"]+)"', body)
plots = re.findall(r'<svg[^>]* id="([^"]+)"', body)
if len(hrefs) != len(set(hrefs)): fail.append("toc: a link twice")
if set(hrefs) != set(heads) | set(plots): fail.append("toc: links %d, headings %d + plots %d; missing %s, extra %s" % (
    len(hrefs), len(heads), len(plots), sorted(set(heads + plots) - set(hrefs))[:5], sorted(set(hrefs) - set(heads + plots))[:5]))
if re.search(r"<h[23]>", body): fail.append("a section heading without an id")
# CSV links: one per drawn plot, named after it, parsing
csvs = {}
for fig in re.findall(r"<figure>.*?</figure>", body, re.S):
    pid = re.search(r'<svg[^>]* id="([^"]+)"', fig).group(1)
    m = re.search(r'<a class="csv" download="([^"]+)\.csv"[^>]* href="data:text/csv;charset=utf-8,([^"]*)">CSV</a>', fig)
    empty = re.search(r'<svg[^>]* height="64"', fig)   # an empty set's plot: no data, no CSV
    if not m:
        if not empty: fail.append(pid + ": no CSV link")
        continue
    if m.group(1) != pid: fail.append("%s: CSV named %s" % (pid, m.group(1)))
    rows = list(csv.reader(io.StringIO(urllib.parse.unquote(m.group(2)))))
    if len(rows) < 2: fail.append(pid + ": CSV without data rows")
    csvs[pid] = rows
def num(x): return float(x) if x != "" else float("nan")
def close(a, b): return abs(a - b) <= 1e-8 * max(1, abs(b)) or (a != a and b != b)
def bins_match(pid, rows, h, who=None):
    e, c = h["edges"], h["counts"]
    got = [(num(r[-3]), num(r[-2]), num(r[-1])) for r in rows[1:] if who is None or r[0] == who]
    lo = [k for k in range(len(c)) if close(e[k], got[0][0])] if got else []
    if not lo: fail.append("%s %s: first bin not a JSON bin" % (pid, who)); return got
    k0 = lo[0]
    for j, (a, b, n) in enumerate(got):
        k = k0 + j
        if k >= len(c) or not (close(a, e[k]) and close(b, e[k + 1]) and close(n, c[k])):
            fail.append("%s %s: row %d %s != JSON bin %d" % (pid, who, j, (a, b, n), k)); break
    if not close(sum(n for _, _, n in got), sum(c)): fail.append("%s %s: counts %g, JSON %g" % (pid, who, sum(n for _, _, n in got), sum(c)))
    return got
for S, d in enumerate(docs, 1):
    h = d["similarity"]["cos_hist"]
    full = csvs.get("plot-%d-sim-cos-hist-full" % S, [])
    if len(full) - 1 != len(h["counts"]): fail.append("cos full: %d rows, JSON %d bins" % (len(full) - 1, len(h["counts"])))
    bins_match("cos-full-%d" % S, full, h)
    zoom = bins_match("cos-zoom-%d" % S, csvs.get("plot-%d-sim-cos-hist" % S, [["h"]]), h)
    nz = [k for k, n in enumerate(h["counts"]) if n > 0]
    if len(zoom) != min(nz[-1] + 1, len(h["counts"]) - 1) - max(nz[0] - 1, 0) + 1: fail.append("cos zoom %d: %d bins, non-empty %d..%d" % (S, len(zoom), nz[0], nz[-1]))
    if not re.search(r'<details class="full"><summary>[^<]*</summary>\n<figure><svg[^>]* id="plot-%d-sim-cos-hist-full"' % S, body): fail.append("cos full %d not in a details" % S)
    lb, lf = np.array(d["base"]["log_density"], float), np.array(d["finetune"]["log_density"], float)
    sc = csvs.get("plot-%d-transfer-density-scatter" % S, [["h"]])
    if len(sc) - 1 != len(lb) or any(int(x[0]) != i or not close(num(x[1]), lb[i]) or not close(num(x[2]), lf[i]) for i, x in enumerate(sc[1:])):
        fail.append("scatter %d CSV != log_density" % S)
    for m in ("base", "finetune"):
        bins_match("overlay-density-%d" % S, csvs.get("plot-%d-overlay-density-hist" % S, [["h"]]), d[m]["density_hist"], m)
        ov = re.search(r'<svg[^>]* id="plot-%d-overlay-act-hist".*?</svg>' % S, body, re.S).group(0)
        if "<title>%s [" % m not in ov: fail.append("overlay act %d: no %s bars" % (S, m))
    live = (lb > -9) & (lf > -9)
    r = np.corrcoef(lb[live], lf[live])[0, 1]
    row = re.search(r"<td>density Pearson r, live features \(not dead in either\)</td>((?:<td[^>]*>[^<]*</td>)+)", body).group(1)
    cells = re.findall(r">([^<]*)</td>", row)
    if cells[S - 1] != "%.4f" % r: fail.append("live r %d: table %s, numpy %.4f" % (S, cells[S - 1], r))
    if "live (%d): r = %.4f" % (live.sum(), r) not in body: fail.append("live r %d: not on the scatter (%d, %.4f)" % (S, live.sum(), r))
    dr = {(int(x[0]), x[1]): num(x[2]) for x in csvs.get("plot-compare-density-r", [["h"]])[1:]}
    if not close(dr.get((S, "all features"), 9), d["transfer"]["density_pearson"]) or abs(dr.get((S, "live features"), 9) - r) > 1e-9:
        fail.append("compare density r %d: %s" % (S, dr))
    for pid, key in (("plot-compare-l0", "l0"), ("plot-compare-ce-recovered", "ce_recovered")):
        got = {(int(x[0]), x[1]): num(x[2]) for x in csvs.get(pid, [["h"]])[1:]}
        for m in ("base", "finetune"):
            if key in d[m] and not close(got.get((S, m), 9), d[m][key]): fail.append("%s %d %s: %s vs %s" % (pid, S, m, got.get((S, m)), d[m][key]))
    a = np.sort([x for x in d["transfer"]["activation_similarity"]["values"] if x is not None])
    cdf = [(num(x[1]), num(x[2])) for x in csvs.get("plot-compare-act-sim-cdf", [["h"]])[1:] if x[0] == str(S)]
    if not cdf or any(abs(a[int(round(f * len(a))) - 1] - v) > 1e-9 for v, f in cdf) or abs(cdf[-1][0] - a[-1]) > 1e-9 or cdf[-1][1] != 1:
        fail.append("CDF %d: CSV points are not (sorted act-sim value, rank / n)" % S)
    wl = csvs.get("plot-%d-weights-layer" % S)
    if wl and (len(wl) - 1 != len(d["weight_deviation"]["by_layer"]) or not all(close(num(x[k]), e[key]) for x, e in zip(wl[1:], d["weight_deviation"]["by_layer"])
                                                                             for k, key in enumerate(("layer", "mean", "max")))):
        fail.append("weights-layer %d CSV != by_layer" % S)
for f in fail: print("FAIL:", f)
if fail: sys.exit(1)
print("OK: %d toc links, %d CSV links checked" % (len(hrefs), len(csvs)))
PY

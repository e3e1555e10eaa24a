#!/bin/bash
# sf-report on valid JSON of the wrong shape (keys of the wrong type, edges/counts mismatched,
# 1e308 values also where 5000 features are binned, empty arrays, markup in strings): exit 0, well-formed SVGs with finite
# coordinates, strings escaped, the odd parts noted instead of drawn.
source "$SF_ROOT/tests/lib.sh"
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
"$PY" - <<'PY' || exit 1
import json
docs = {
 "types": {"base": 5, "finetune": "x", "similarity": [], "transfer": {"activation_similarity": {"values": "no"}, "density_pearson": "r"}},
 "hist": {"base": {"density_hist": {"edges": [0, 1], "counts": [1, 2, 3]}, "norm_hist": {"edges": ["a", "b"], "counts": [1]},
          "act_log10_hist": {"edges": [1, 1, 1], "counts": [0, 0]}, "log_density": [1e308, -1e308, None]},
          "finetune": {"log_density": [0, 0]}, "similarity": {"cos_by_position": [], "l2_by_position": [None, None],
          "cos_hist": {"edges": [], "counts": []}, "l2_hist": {"edges": [0, 1e-300, 1e300, 1e301], "counts": [1e18, -5, 3]}}},
 "huge": {"base": {"l0": 1e308, "log_density": [-1e300, 1e300]}, "finetune": {"l0": -1e308, "log_density": [1e300, -1e300]},
         "transfer": {"logit_similarity": {"values": [1e308, -1e308, 0]}, "activation_error_dead_base": {"values": [5, 5, 5]}}},
 "many": {"base": {"log_density": [1e300] * 2500 + [-1e300] * 2500}, "finetune": {"log_density": [-1e300] * 2500 + [1e300] * 2500},
          "transfer": {"activation_similarity": {"values": [1e308, -1e308] * 5}}},
 "prov": {"model": {"l0": 1}, "provenance": {"inputs": [{"header": {"stages": [{"name": 5, "args": 7}], "x": {"y": 1}}}, 3],
          "reduce": 5, "checkpoints": [1]}, "throughput": {"a": 5, "b": {"rows": "x"}}, "nan_counts": {"z": 3}},
 "esc": {"hook": "<script>&\"", "model": {"l0": 1}, "provenance": {"inputs": [{"role": "<b>", "header": {"model": "a<b>&c"}}]}},
}
for k, d in docs.items(): json.dump(d, open(k + ".json", "w"))
PY
for f in types hist huge many prov esc; do
  sf-report $f.json -o $f.html || die "$f.json: exit $?"
done
"$PY" - <<'PY' || exit 1
import re, subprocess, sys
for f in ("types", "hist", "huge", "many", "prov", "esc"):
    h = open(f + ".html").read()
    for s in re.findall(r"<svg\b.*?</svg>", h, re.S):
        p = subprocess.run(["xmllint", "--noout", "-"], input=s.encode(), capture_output=True)
        if p.returncode: sys.exit("FAIL: %s: svg not well-formed: %s" % (f, p.stderr.decode()[:200]))
        for v in re.findall(r'\s(?:x|y|x1|y1|x2|y2|width|height|cx|cy)="([^"]*)"', s):
            if not re.fullmatch(r"-?\d{1,5}(\.\d+)?", v): sys.exit("FAIL: %s: coordinate %r" % (f, v[:40]))
    if re.search(r"\b-?nan\b|\binf\b", re.sub(r"<footer.*", "", h, flags=re.S)): sys.exit("FAIL: %s: nan/inf printed" % f)
h = re.sub(r"<script>\(function\(\).*?</script>", "", open("esc.html").read(), flags=re.S)   # the page's own script
if "<script>" in h or "a<b>&c" in h or "&lt;script&gt;" not in h or "a&lt;b&gt;&amp;c" not in h: sys.exit("FAIL: strings not escaped")
print("OK")
PY

#!/usr/bin/env bash
# Guard rails (issue 16): sf-reduce's "warnings" and sf-report's "undetermined" verdict.
#   - the README's stories260k example (ft-code, --outlier-multiplier 2; 16,384 tokens): ft-code has
#     ~67% outliers under the base's rule: an outlier_fraction_high warning with its numbers in
#     result.json, listed at the top of report.html, and the verdict is "undetermined" (neither
#     "transfers" nor "does not transfer"), saying what the feature figures alone say;
#     few_tokens_for_density under 100,000 tokens
#   - base vs ft-mild with no outlier rule: no outlier warning
#   - a finetune checkpoint with one more vocabulary row: finetune_vocab_cut (512 vs 513)
#   - a NaN in a loss stream: nan_counted, naming the nan_counts key
#   - the report's verdict on a near-zero / negative base CE delta (floored at 0.01 nats, said so)
#     and a negative finetune CE delta (counts as 0, said so): never a negative ratio
source "$SF_ROOT/tests/lib.sh"
need_fixtures; need_py numpy
F=$SF_FIXTURES; M=$F/models; SAE=$F/saes/stories260k-L2-relu
"$SF_ROOT/pipelines/transfer.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-code" --sae "$SAE" \
    --data "$F/data/stories.jsonl" --tokens 16384 --outlier-multiplier 2 --ablate --out code >/dev/null 2>&1 ||
    die "transfer.sh ft-code failed"
"$SF_ROOT/pipelines/transfer.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-mild" --sae "$SAE" \
    --data "$F/data/stories.jsonl" --tokens 16384 --keep-streams streams --out mild >/dev/null 2>&1 ||
    die "transfer.sh ft-mild failed"
# a finetune with an added vocabulary row (tied embedding: one more embed_tokens row)
"$PY" - "$M/stories260k-ft-mild" <<'EOF' || die "making the larger-vocabulary finetune failed"
import json, os, sys, numpy as np, sfstream as sf
src = sys.argv[1]; os.makedirs("ft-vocab", exist_ok=True)
cfg = json.load(open(f"{src}/config.json")); cfg["vocab_size"] += 1
json.dump(cfg, open("ft-vocab/config.json", "w"))
P = sf.read_checkpoint(src)
E = P["model.embed_tokens.weight"]
P["model.embed_tokens.weight"] = np.concatenate([E, np.zeros((1, E.shape[1]), E.dtype)])
sf.write_safetensors("ft-vocab/model.safetensors", P)
EOF
sf-reduce --base streams/base.zst --finetune streams/finetune.zst --base-model "$M/stories260k" \
    --finetune-model ft-vocab --no-partial -o vocab.json || die "sf-reduce with the larger-vocabulary finetune failed"
# a loss stream with one NaN
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' \
  '{"sf":1,"kind":"loss","seq":0,"tokens":{"dtype":"i32","shape":[1,3],"data":[1,2,3]},"ce_clean":{"dtype":"f32","shape":[1,2],"data":[1,NaN]}}' \
  '{"sf":1,"kind":"end","frames":1,"rows":1}' | sf-cat --pack | sf-reduce --no-partial -o nan.json || die "sf-reduce on the NaN stream failed"
"$PY" - <<'EOF' || die "sf-report on the edited studies failed"
import json, subprocess
d = json.load(open("mild/result.json"))
for name, db, df in (("near0", 0.004, 0.2), ("negbase", -0.02, 0.2), ("negft", 0.15, -0.05)):
    d["base"]["ce_delta"], d["finetune"]["ce_delta"] = db, df
    d["base"]["outlier_fraction"] = d["finetune"]["outlier_fraction"] = 0.0
    json.dump(d, open(name + ".json", "w"))
    subprocess.run(["sf-report", name + ".json", "-o", name + ".html"], check=True)
EOF
"$PY" - "$F" <<'EOF' || exit 1
import json, re, sys
fail = []
def codes(d): return [w["code"] for w in d.get("warnings", [])]
code = json.load(open("code/result.json"))
w = [x for x in code["warnings"] if x["code"] == "outlier_fraction_high"]
if len(w) != 1: fail.append("ft-code: %d outlier warnings (want 1): %s" % (len(w), codes(code)))
else:
    w = w[0]
    if w["model"] != "finetune": fail.append("outlier warning names %s" % w["model"])
    if w["outlier_fraction"] != code["finetune"]["outlier_fraction"] or not w["outlier_fraction"] > 0.5:
        fail.append("outlier warning fraction %s vs finetune %s" % (w["outlier_fraction"], code["finetune"]["outlier_fraction"]))
    if w["outliers"] != code["finetune"]["outliers"] or w["tokens"] != 16384 or w["limit"] != 0.01: fail.append("outlier warning numbers %s" % w)
    if "%.2f%%" % (100 * w["outlier_fraction"]) not in w["message"]: fail.append("outlier warning message: " + w["message"])
t = [x for x in code["warnings"] if x["code"] == "few_tokens_for_density"]
if not t or t[0]["tokens"] != 16384 or t[0]["min_tokens"] != 100000: fail.append("few_tokens_for_density: %s" % t)
html = open("code/report.html").read()
sec = re.search(r'<section id="warnings">(.*?)</section>', html, re.S)
if not sec or 'data-code="outlier_fraction_high"' not in sec.group(1): fail.append("report: no outlier warning in the warnings section")
elif html.index('<section id="warnings">') > html.index('<table id="summary">'): fail.append("report: warnings not at the top")
v = re.search(r'id="verdict-1">(.*?)</li>', html).group(1)
head = re.sub(r"<[^>]*>", "", v).split(": ", 1)[-1]
if not head.startswith("undetermined: ") or "outliers" not in head or "by its features alone" not in head:
    fail.append("ft-code verdict: " + v)
mild = json.load(open("mild/result.json"))
if "outlier_fraction_high" in codes(mild): fail.append("ft-mild without an outlier rule warns of outliers")
if "data-code=\"outlier_fraction_high\"" in open("mild/report.html").read(): fail.append("ft-mild report shows an outlier warning")
vw = [x for x in json.load(open("vocab.json"))["warnings"] if x["code"] == "finetune_vocab_cut"]
if not vw or (vw[0]["base_vocab"], vw[0]["finetune_vocab"]) != (512, 513): fail.append("finetune_vocab_cut: %s" % vw)
if "finetune_vocab_cut" in codes(mild): fail.append("ft-mild: vocab cut warning without a cut")
nw = [x for x in json.load(open("nan.json"))["warnings"] if x["code"] == "nan_counted"]
if not nw or nw[0]["count"] != 1 or nw[0]["where"] != ["model.ce_clean"]: fail.append("nan_counted: %s" % nw)
if "nan_counted" in codes(mild): fail.append("ft-mild: nan_counted (only activation_similarity_all, expected for dead features)")
for name, why in (("near0", "CE delta ratio 20.00 (base CE delta 0.0040 nats floored at 0.01)"),
                  ("negbase", "CE delta ratio 20.00 (base CE delta -0.0200 nats floored at 0.01)"),
                  ("negft", "CE delta ratio 0.00 (finetune CE delta -0.0500 nats: splicing the SAE in lowers its loss)")):
    v = re.search(r'id="verdict-1">(.*?)</li>', open(name + ".html").read()).group(1)
    if why not in v or re.search(r"CE delta ratio -\d", v):
        fail.append("%s verdict: %s" % (name, v))
for f in fail: print("FAIL:", f)
sys.exit(1 if fail else 0)
EOF
echo "OK: outlier, few-tokens, vocab-cut and NaN warnings; undetermined and floored verdicts"

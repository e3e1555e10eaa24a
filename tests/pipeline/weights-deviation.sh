#!/usr/bin/env bash
# weight_deviation (issue 16: the seed's cheap predictor, computed by default) against numpy
# (float64) on stories260k vs stories260k-ft-mild:
#   - sf-reduce --weights-only: every tensor's ||A - B||/||A|| within 1e-6 relative; mean, max,
#     max_tensor; by_layer [{layer, mean, max, count}] over model.layers.L.*; by_kind {KIND: {mean,
#     max, count}}, KIND the name's last part before ".weight"
#   - pipelines/transfer.sh: result.json carries the same block (computed before any token, said
#     on stderr), and report.html has the plots plot-1-weights-layer and plot-1-weights-kind
#     (role="img", aria-label, <title>) and the summary's weight-deviation rows filled
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
F=$SF_FIXTURES; M=$F/models
"$SF_ROOT/pipelines/transfer.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-mild" \
    --sae "$F/saes/stories260k-L2-relu" --data "$F/data/stories.jsonl" --tokens 2048 --out study \
    2> study.err || { cat study.err >&2; die "transfer.sh failed"; }
grep -q 'weight deviation of the checkpoints first' study.err || die "no 'weight deviation first' line on stderr"
grep -q 'weight deviation ||A-B||/||A||: mean ' study.err || die "no weight deviation mean/max line on stderr"
sf-reduce --weights-only --base-model "$M/stories260k" --finetune-model "$M/stories260k-ft-mild" -o wo.json ||
  die "sf-reduce --weights-only failed"
"$PY" - <<'PY' || exit 1
import json, os, re
import numpy as np
import sfstream as sf
M = os.path.join(sf.FX, "models")
A, B = sf.read_checkpoint(f"{M}/stories260k"), sf.read_checkpoint(f"{M}/stories260k-ft-mild")
rel = {}
for k, a in A.items():
    a = a.astype(np.float64); b = B[k][: a.shape[0]].astype(np.float64)
    rel[k] = float(np.linalg.norm(a - b) / np.linalg.norm(a))
def kind(n):
    n = n[: -len(".weight")] if n.endswith(".weight") else n
    return n.rsplit(".", 1)[-1]
layers, kinds = {}, {}
for k, v in rel.items():
    m = re.match(r"model\.layers\.(\d+)\.", k)
    if m: layers.setdefault(int(m.group(1)), []).append(v)
    kinds.setdefault(kind(k), []).append(v)
c = sf.Checker()
for where, doc in [("--weights-only", json.load(open("wo.json"))), ("transfer.sh", json.load(open("study/result.json")))]:
    wd = doc["weight_deviation"]
    c.eq(sorted(wd["tensors"]), sorted(rel), f"{where}: every tensor")
    for k, v in rel.items():
        c.close(wd["tensors"][k], v, f"{where}: {k}", rtol=1e-6, atol=0)
    c.close(wd["mean"], np.mean(list(rel.values())), f"{where}: mean", rtol=1e-6, atol=0)
    c.close(wd["max"], max(rel.values()), f"{where}: max", rtol=1e-6, atol=0)
    c.eq(wd["max_tensor"], max(rel, key=rel.get), f"{where}: max_tensor")
    c.eq(wd["skipped"], [], f"{where}: nothing skipped")
    c.eq([e["layer"] for e in wd["by_layer"]], sorted(layers), f"{where}: by_layer layers")
    for e in wd["by_layer"]:
        v = layers[e["layer"]]
        c.close(e["mean"], np.mean(v), f"{where}: layer {e['layer']} mean", rtol=1e-6, atol=0)
        c.close(e["max"], max(v), f"{where}: layer {e['layer']} max", rtol=1e-6, atol=0)
        c.eq(e["count"], len(v), f"{where}: layer {e['layer']} count")
    want = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_layernorm",
            "post_attention_layernorm", "embed_tokens", "norm"}   # stories260k: tied, no lm_head
    c.eq(set(wd["by_kind"]), want, f"{where}: by_kind kinds")
    c.eq(set(kinds), want, f"{where}: numpy's kinds")
    for k, v in kinds.items():
        c.close(wd["by_kind"][k]["mean"], np.mean(v), f"{where}: kind {k} mean", rtol=1e-6, atol=0)
        c.close(wd["by_kind"][k]["max"], max(v), f"{where}: kind {k} max", rtol=1e-6, atol=0)
        c.eq(wd["by_kind"][k]["count"], len(v), f"{where}: kind {k} count")
html = open("study/report.html").read()
for pid in ("plot-1-weights-layer", "plot-1-weights-kind"):
    svg = re.search(r'<svg[^>]*id="%s"[^>]*>.*?</svg>' % pid, html, re.S)
    c.eq(bool(svg), True, f"report: {pid}")
    if svg:
        s = svg.group(0)
        c.eq('role="img"' in s and 'aria-label="' in s and "<title>" in s, True, f"report: {pid} accessible")
row = re.search(r"weight deviation, mean over tensors</td><td[^>]*>([^<]*)<", html)
c.eq(row and row.group(1), "%.4f" % np.mean(list(rel.values())), "report: summary weight deviation mean")
row = re.search(r"weight deviation, max over tensors</td><td[^>]*>([^<]*)<", html)
c.eq(row and row.group(1), "%.4f" % max(rel.values()), "report: summary weight deviation max")
c.done()
PY

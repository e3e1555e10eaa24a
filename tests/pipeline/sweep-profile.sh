#!/usr/bin/env bash
# The similarity profile of a sweep (issue 17) from one pass of each model equals the single-hook
# similarity pipeline run once per hook: pipelines/sweep.sh (sf-forward --hook all: 6 hooks of
# stories260k, sf-compare, sf-reduce's per-hook blocks) vs pipelines/similarity.sh --hook H for
# each of the 6 hooks, on ft-mild and ft-code: every number of each hook's similarity block
# (cos/l2 means, by position, by row, histograms) within 1e-12. And ft-code departs further
# from the base than ft-mild at every hook past the embedding (cos_mean lower). The result's
# weight_deviation has one by_layer entry per block. The profile is printed (the issue's note).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models
HOOKS=(blocks.0.hook_resid_pre blocks.0.hook_resid_post blocks.1.hook_resid_post blocks.2.hook_resid_post
       blocks.3.hook_resid_post blocks.4.hook_resid_post)
for ft in mild code; do
  "$SF_ROOT/pipelines/sweep.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-$ft" \
      --sae "$F/saes/stories260k-L2-relu" --data "$F/data/stories.jsonl" --tokens 8192 --rows 8 \
      --out "sweep-$ft" --no-report 2> "sweep-$ft.err" || { cat "sweep-$ft.err"; die "sweep.sh ($ft) failed"; }
  for h in "${HOOKS[@]}"; do
    "$SF_ROOT/pipelines/similarity.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-$ft" --hook "$h" \
        --data "$F/data/stories.jsonl" --tokens 8192 --ctx 128 --rows 8 --out "sim-$ft-$h.json" ||
      die "similarity.sh --hook $h ($ft) failed"
  done
done
"$PY" - "${HOOKS[@]}" <<'PY' || exit 1
import json, math, sys
hooks = sys.argv[1:]
import sfstream
bad, n = [], 0
prof = {}
for ft in ("mild", "code"):
    d = json.load(open(f"sweep-{ft}/result.json"))
    if d.get("saeflow_sweep") != 1: bad.append(f"{ft}: not a sweep document")
    got = [h["hook"] for h in d["profile"]["hooks"]]
    if got != hooks or d["hooks"] != hooks: bad.append(f"{ft}: profile hooks {got}, expected {hooks}")
    for blk in d["profile"]["hooks"]:
        ref = json.load(open(f"sim-{ft}-{blk['hook']}.json"))
        if blk["tokens"] != ref["tokens"] or blk["tokens"] != 8192: bad.append(f"{ft} {blk['hook']}: tokens {blk['tokens']} vs {ref['tokens']}")
        k, _, diff = sfstream.compare_docs(blk["similarity"], ref["similarity"], 1e-12)
        n += k
        bad += [f"{ft}.{blk['hook']}.similarity{d}" for d in diff]
    prof[ft] = [b["similarity"]["cos_mean"] for b in d["profile"]["hooks"]]
    wl = [e["layer"] for e in d["weight_deviation"]["by_layer"]]
    if wl != [0, 1, 2, 3, 4]: bad.append(f"{ft}: weight_deviation.by_layer layers {wl}")
    if [s["hook"] for s in d["studies"]] != ["blocks.2.hook_resid_post"]: bad.append(f"{ft}: studies")
for i, h in enumerate(hooks):
    if i >= 1 and not prof["code"][i] < prof["mild"][i]:
        bad.append(f"{h}: ft-code cos_mean {prof['code'][i]} is not below ft-mild's {prof['mild'][i]}")
print("profile (cos_mean by hook; 8192 tokens):")
for i, h in enumerate(hooks): print(f"  {h:28s} ft-mild {prof['mild'][i]:.6f}  ft-code {prof['code'][i]:.6f}")
print(f"{n} numbers compared")
if n < 6 * 2 * 400: bad.append(f"only {n} numbers compared")
if bad: print("FAIL:", *bad[:20], sep="\n  "); sys.exit(1)
PY

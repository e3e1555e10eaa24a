#!/usr/bin/env bash
# A sweep with one SAE per block (issue 17): SAEs for blocks 0, 1, 3, 4 of stories260k trained
# here with sf-train (d_sae 256, 800 steps: ~10 s each), the fixture's relu SAE at blocks.2. pipelines/sweep.sh (one
# forward per model, every SAE fed from it through sf-cat --hook, --outlier-multiplier 2 --ablate)
# on ft-code gives, for the blocks.2 SAE, the same figures as today's single-SAE transfer.sh
# within 1e-9 (every number of result.json but timings and provenance). The studies come in
# network order, one per SAE hook, each a whole transfer document (ce_recovered, density r,
# activation similarity), also written to OUT/studies/NAME/result.json.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models
mkdir -p saes
for spec in 0:0.6 1:0.9 3:1.5 4:2; do   # layer:L1 coefficient (the residual norm grows with depth)
  L=${spec%:*}
  "$SF_ROOT/pipelines/train.sh" --model "$M/stories260k" --hook "blocks.$L.hook_resid_post" --data "$F/data/stories.jsonl" \
      --out "saes/L$L" --tokens 32768 -- --d-sae 256 --l1 "${spec#*:}" --steps 800 -q || die "train.sh blocks.$L failed"
done
cp -r "$F/saes/stories260k-L2-relu" saes/L2
STUDY=(--base "$M/stories260k" --finetune "$M/stories260k-ft-code" --data "$F/data/stories.jsonl" --tokens 8192
       --rows 8 --outlier-multiplier 2 --ablate --no-report)
"$SF_ROOT/pipelines/sweep.sh" "${STUDY[@]}" --saes saes --out sweep 2> sweep.err || { cat sweep.err; die "sweep.sh failed"; }
"$SF_ROOT/pipelines/transfer.sh" "${STUDY[@]}" --sae saes/L2 --out single 2> single.err || { cat single.err; die "transfer.sh failed"; }
"$PY" - <<'PY' || exit 1
import json, sys
import sfstream
d = json.load(open("sweep/result.json"))
bad = []
hooks = [s["hook"] for s in d["studies"]]
want = [f"blocks.{L}.hook_resid_post" for L in range(5)]
if hooks != want: bad.append(f"studies at {hooks}, expected {want}")
if [s["depth"] for s in d["studies"]] != [1, 2, 3, 4, 5]: bad.append("depths")
for s in d["studies"]:
    r = s["result"]
    disk = json.load(open("sweep/" + s["dir"] + "/result.json"))
    if disk != r: bad.append(f"{s['dir']}: result differs from its file")
    for k in ("base", "finetune", "transfer", "similarity"):
        if k not in r: bad.append(f"{s['hook']}: no {k} block")
    if r.get("tokens") != 8192: bad.append(f"{s['hook']}: tokens {r.get('tokens')}")
    if r.get("base", {}).get("ce_recovered") is None: bad.append(f"{s['hook']}: no ce_recovered")
s2 = next(s for s in d["studies"] if s["hook"] == "blocks.2.hook_resid_post")["result"]
ref = json.load(open("single/result.json"))
n, worst, diff = sfstream.compare_docs(s2, ref, 1e-9)
bad += diff
print(f"blocks.2: {n} numbers compared with transfer.sh, worst relative difference {worst:.3g}")
if n < 5000: bad.append(f"only {n} numbers")
for s in d["studies"]:
    r = s["result"]; b, f = r["base"], r["finetune"]
    print(f"  {s['hook']:26s} L0 {b['l0']:.2f}/{f['l0']:.2f}  ce_delta {b['ce_delta']:.4f}/{f['ce_delta']:.4f}  "
          f"ce_recovered {b['ce_recovered']:.3f}/{f['ce_recovered']:.3f}  density r {r['transfer'].get('density_pearson')}")
if bad: print("FAIL:", *bad[:20], sep="\n  "); sys.exit(1)
PY

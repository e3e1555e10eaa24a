#!/usr/bin/env bash
# A sharded sweep (issue 17 with issue 13: one plan, one merge): sweep.sh --plan, three shards
# (two at once), --merge-plan gives the single-pass sweep's result.json within 1e-9 on every
# number (the profile merged per hook from its partials, each SAE's study merged by transfer.sh).
# A finished shard is skipped when run again; a missing shard is refused naming it.
# SAEs: the fixture's relu and topk SAEs at blocks.2, and a copy of the relu one relabelled to
# blocks.1 (its figures are poor; they only have to agree between the two runs).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models
mkdir -p saes
cp -r "$F/saes/stories260k-L2-relu" saes/relu; cp -r "$F/saes/stories260k-L2-topk" saes/topk
cp -r "$F/saes/stories260k-L2-relu" saes/relu-L1
sed -i 's/"hook_name": "blocks.2.hook_resid_post"/"hook_name": "blocks.1.hook_resid_post"/; s/"hook_layer": 2/"hook_layer": 1/' saes/relu-L1/cfg.json
grep -q blocks.1.hook_resid_post saes/relu-L1/cfg.json || die "could not relabel the SAE"
STUDY=(--base "$M/stories260k" --finetune "$M/stories260k-ft-code" --saes saes --data "$F/data/stories.jsonl"
       --tokens 16384 --rows 8 --outlier-multiplier 2 --ablate)
SW=$SF_ROOT/pipelines/sweep.sh
"$SW" "${STUDY[@]}" --out single --no-report 2> single.err || { cat single.err; die "single sweep failed"; }
"$SW" --plan plan "${STUDY[@]}" 2> plan.err || { cat plan.err; die "sweep.sh --plan failed"; }
grep -q 'wrote .*sweep.json (plan .*: 3 SAEs, 128 rows in 16 frames of 8)' plan.err || { cat plan.err; die "no plan line"; }
"$SW" --from-plan plan --shard 0/3 2> s0.err & p0=$!
"$SW" --from-plan plan --shard 2/3 2> s2.err || { cat s2.err; die "shard 2/3 failed"; }
wait $p0 || { cat s0.err; die "shard 0/3 failed"; }
"$SW" --merge-plan plan --no-report 2> m1.err && die "--merge-plan with shard 1/3 missing exited 0"
grep -q 'error: missing shard 1/3' m1.err || { cat m1.err; die "no 'missing shard 1/3' message"; }
"$SW" --from-plan plan --shard 1/3 2> s1.err || { cat s1.err; die "shard 1/3 failed"; }
"$SW" --from-plan plan --shard 1/3 2> s1b.err || { cat s1b.err; die "shard 1/3 rerun failed"; }
grep -q 'shard 1/3: its results are there (plan .*), skipping' s1b.err || { cat s1b.err; die "a finished shard was not skipped"; }
"$SW" --merge-plan plan --no-report 2> m.err || { cat m.err; die "--merge-plan failed"; }
"$PY" - <<'PY' || exit 1
import json, sys
import sfstream
a, b = json.load(open("plan/result.json")), json.load(open("single/result.json"))
n, worst, bad = sfstream.compare_docs(a, b, 1e-9, sfstream.DOC_SKIP | {"partial"})
hooks = [s["hook"] for s in a["studies"]]
if hooks != ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post", "blocks.2.hook_resid_post"]: bad.append(f"studies {hooks}")
if len(a["profile"]["hooks"]) != 6: bad.append("profile hooks")
print(f"{n} numbers compared, worst relative difference {worst:.3g}")
if n < 20000: bad.append(f"only {n} numbers")
if bad: print("FAIL:", *bad[:20], sep="\n  "); sys.exit(1)
PY

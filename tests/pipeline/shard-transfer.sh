#!/usr/bin/env bash
# pipelines/transfer.sh --plan / --from-plan --shard K/N / --merge-plan (issue 13) on stories260k
# (base vs ft-code, relu SAE, 16,384 tokens, outlier multiplier 2, --ablate): 4 shards merged equal
# the single pass within 1e-12 relative on every number (the logit-similarity and unembedding
# figures too, with no checkpoint flag on the merge); a finished shard is skipped (resume), a
# shard of another plan is rerun; planning another study into the same directory is refused;
# a merge with a shard missing exits 1 naming it.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES
ARGS=(--base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
      --data "$F/data/stories.jsonl" --tokens 16384 --outlier-multiplier 2 --ablate)
transfer.sh "${ARGS[@]}" --no-report --out single 2>/dev/null || die "single pass failed"
transfer.sh --plan plan "${ARGS[@]}" 2> plan.err || die "--plan failed: $(cat plan.err)"
grep -q '"frames": 16' plan/study.json || die "16 frames of 8 rows expected: $(cat plan/study.json)"
H=$("$PY" -c 'import json; print(json.load(open("plan/study.json"))["plan_hash"])')
for k in 3 1 0; do transfer.sh --from-plan plan --shard $k/4 2>/dev/null || die "shard $k/4 failed"; done
# a merge with shard 2/4 missing
transfer.sh --merge-plan plan --no-report 2> miss.err; rc=$?
[ $rc = 1 ] && [ "$(cat miss.err)" = "sf-reduce: error: --merge: mismatch: missing shard 2/4" ] || die "missing shard: rc $rc, $(cat miss.err)"
[ ! -e plan/result.json ] || die "a refused merge left a result.json"
transfer.sh --from-plan plan --shard 2/4 2>/dev/null || die "shard 2/4 failed"
# resume: a finished shard is skipped
touch -d '2000-01-01' plan/shards/1-of-4.json
transfer.sh --from-plan plan --shard 1/4 2> skip.err || die "rerun of shard 1/4 failed"
grep -q "skipping" skip.err && [ "$(stat -c %Y plan/shards/1-of-4.json)" = "$(date -d 2000-01-01 +%s)" ] || die "shard 1/4 was not skipped: $(cat skip.err)"
# ... unless it belongs to another plan
"$PY" -c 'import json; p = "plan/shards/1-of-4.json"; d = json.load(open(p)); d["partial"]["shard"]["plan_hash"] = "0" * 64; json.dump(d, open(p, "w"))'
transfer.sh --from-plan plan --shard 1/4 2> redo.err || die "shard 1/4 of another plan not rerun: $(cat redo.err)"
grep -q "skipping" redo.err && die "shard 1/4 of another plan was skipped"
transfer.sh --merge-plan plan 2> merge.err || die "--merge-plan failed: $(cat merge.err)"
[ -s plan/report.html ] || die "no report.html"
"$PY" "$SF_ROOT/tests/pipeline/shard-compare.py" single/result.json plan/result.json || die "merged result differs from the single pass"
"$PY" -c 'import json, sys; d = json.load(open("plan/result.json"))
t = d["transfer"]; sys.exit(0 if t["logit_similarity"]["count"] > 0 and "unembed_frobenius_ratio" in t and d["provenance"]["plan"]["plan_hash"] == sys.argv[1] else 1)' "$H" ||
  die "the merge lost the checkpoint figures or the plan hash"
# features.jsonl (every feature's figures and top contexts) of the merge equals the single pass's
"$PY" -c 'import json, sys, sfstream
a, b = ([json.loads(l) for l in open(f)] for f in ("single/features.jsonl", "plan/features.jsonl"))
n, worst, bad = sfstream.compare_docs(a, b, 1e-12); print(n, "numbers of features.jsonl, worst", worst, *bad[:5])
sys.exit(1 if bad or len(a) != 512 else 0)' || die "the merged features.jsonl differs from the single pass"
# planning another study into the same directory is refused; the same plan again is fine
transfer.sh --plan plan "${ARGS[@]}" 2>/dev/null || die "re-planning the same study failed"
transfer.sh --plan plan "${ARGS[@]}" --tokens 8192 2> other.err; rc=$?
[ $rc = 1 ] && grep -q "holds another plan" other.err || die "another plan into plan/: rc $rc, $(cat other.err)"
transfer.sh --from-plan plan --shard 4/4 2>/dev/null; [ $? = 2 ] || die "--shard 4/4 is a usage error"
transfer.sh --from-plan plan --shard 0/17 2>/dev/null; [ $? = 2 ] || die "--shard 0/17 (16 frames) is a usage error"
echo "ok"

#!/usr/bin/env bash
# pipelines/parallel.sh (issue 13) on stories260k (base vs ft-code, relu SAE, 16,384 tokens,
# outlier multiplier 2, --ablate): 3 shards run by GNU parallel, and 1 shard, each equal the single
# pass within 1e-12 relative on every number; run again with one shard result gone, only that
# shard runs (the others are skipped) and the result is the same.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
command -v parallel > /dev/null || skip "GNU parallel not installed (scripts/install-deps.sh installs it)"
F=$SF_FIXTURES
ARGS=(--base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
      --data "$F/data/stories.jsonl" --tokens 16384 --outlier-multiplier 2 --ablate)
transfer.sh "${ARGS[@]}" --no-report --out single 2>/dev/null || die "single pass failed"
parallel.sh --out p3 --shards 3 "${ARGS[@]}" 2> p3.err || die "parallel.sh --shards 3 failed: $(tail -5 p3.err)"
[ -s p3/report.html ] && [ -s p3/parallel.log ] || die "no report.html or parallel.log"
"$PY" "$SF_ROOT/tests/pipeline/shard-compare.py" single/result.json p3/result.json || die "3 shards differ from the single pass"
parallel.sh --out p1 --shards 1 --no-report "${ARGS[@]}" 2> p1.err || die "parallel.sh --shards 1 failed: $(tail -5 p1.err)"
"$PY" "$SF_ROOT/tests/pipeline/shard-compare.py" single/result.json p1/result.json || die "1 shard differs from the single pass"
# resume: only the missing shard runs
rm p3/shards/1-of-3.json p3/result.json
parallel.sh --out p3 --shards 3 --no-report 2> again.err || die "rerun failed: $(tail -5 again.err)"
[ "$(grep -c 'skipping' again.err)" = 2 ] && grep -q 'shard 1/3 (rows 40:80): wrote' again.err || die "rerun did not run only shard 1/3: $(cat again.err)"
"$PY" "$SF_ROOT/tests/pipeline/shard-compare.py" single/result.json p3/result.json || die "the resumed result differs"
parallel.sh --out p3 --shards 17 2>/dev/null; [ $? = 2 ] || die "--shards 17 of 16 frames is a usage error"
echo ok

#!/usr/bin/env bash
# bench-shard.sh - the cost of sharding (issue 13): the stories260k study (base vs ft-code, relu
# SAE, 32,768 tokens, --outlier-multiplier 2 --ablate) as one pass vs planned and run as 4 shards
# by pipelines/parallel.sh on this host (2 at once on 2 cores) and merged. Wall seconds of each
# (best of 2); the ratio is the overhead: per shard a tokenizer start, both models mapped, the
# SAE loaded, the weight deviation recomputed at the merge, plus the plan's row count and hashes.
# Needs ../shared/fixtures (else one row saying so). ~1 minute.
set -u
cd "$(dirname "$0")/.."
F=${SF_FIXTURES:-$(cd ../shared/fixtures 2>/dev/null && pwd)}
[ -n "$F" ] && [ -d "$F/models/stories260k" ] || { echo "| shards | overhead | n/a | | ../shared/fixtures not found |"; exit 0; }
command -v parallel > /dev/null || { echo "| shards | overhead | n/a | | GNU parallel is not installed |"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
STUDY=(--base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
       --data "$F/data/stories.jsonl" --tokens 32768 --outlier-multiplier 2 --ablate --no-report)
wall() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1 || echo "FAILED: $*" >&2; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (a < b ? a : b)}'; }
one=$(min "$(wall pipelines/transfer.sh "${STUDY[@]}" --out "$tmp/one1")" "$(wall pipelines/transfer.sh "${STUDY[@]}" --out "$tmp/one2")")
sh1=$(wall pipelines/parallel.sh --out "$tmp/sh1" --shards 4 -j 2 "${STUDY[@]}")
sh2=$(wall pipelines/parallel.sh --out "$tmp/sh2" --shards 4 -j 2 "${STUDY[@]}")
sh=$(min "$sh1" "$sh2")
echo "| shards | stories260k study, 32768 tokens --ablate: 4 shards (2 at once) + plan + merge vs one pass | $(awk -v a="$sh" -v b="$one" 'BEGIN{printf "%.2f", a/b}') | x one pass | $sh s vs $one s on $(nproc) cores: the per-shard fixed cost (model and SAE loading, tokenizer start, the merge's weight deviation) is paid N times; on a real model keep shards >= ~16 frames so it stays small next to the forward |"

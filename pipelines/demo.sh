#!/usr/bin/env bash
# pipelines/demo.sh - the embedded demo: no download, a SYNTHETIC model (see sf-mkmodel --help).
#   1. sf-mkmodel: a base checkpoint over data/demo/stories.jsonl, a mild finetune (layers 1-2
#      perturbed by 10% relative Frobenius norm) and a strong one (70%)
#   2. pipelines/train.sh: the demo SAE (TopK, k 8, 256 features) on base activations at
#      blocks.2.hook_resid_post, from rows the studies do not use. (A ReLU SAE shows the same
#      contrast in EV and L0, but on this synthetic stream its many near-threshold features
#      make the mild finetune's density correlation noisy; TopK's is clean.)
#   3. pipelines/transfer.sh twice (base vs mild, base vs strong) on held-out rows
#   4. sf-report with both studies side by side
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SF_BIN=${SF_BUILD:-$ROOT/build}/bin; [ -d "$SF_BIN" ] && PATH="$SF_BIN:$PATH"   # SF_BUILD: another build dir
OUT=demo-out TOKENS=16384 TRAIN_TOKENS=32768
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --train-tokens) TRAIN_TOKENS=${2:?}; shift 2 ;;
    -h|--help) echo "usage: pipelines/demo.sh [--out DIR (default demo-out)] [--tokens N (study, default 16384)] [--train-tokens N (default 32768)]"
               echo "Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error"; exit 0 ;;
    *) echo "demo.sh: error: unknown option '$1'" >&2; exit 2 ;;
  esac
done
DATA=$ROOT/data/demo/stories.jsonl
HOOK=blocks.2.hook_resid_post
CTX=128
M=$OUT/models
mkdir -p "$M"
t0=$EPOCHREALTIME
echo "demo: a SYNTHETIC model (made-up weights with structure, not a trained LM; see sf-mkmodel --help)" >&2
echo "demo: and two synthetic finetunes (random perturbations of layers 1-2); outputs in $OUT/" >&2
rm -rf "$OUT/sae" "$OUT/mild" "$OUT/strong" "$OUT/report.html"
say() { awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$1" 'BEGIN { printf "demo: %-44s %6.1f s\n", m, b - a }' >&2; }

sf-mkmodel -o "$M/base" --corpus "$DATA" --seed 1
sf-mkmodel -o "$M/ft-mild" --finetune-of "$M/base" --perturb-layers 1,2 --magnitude 0.1 --seed 11
sf-mkmodel -o "$M/ft-strong" --finetune-of "$M/base" --perturb-layers 1,2 --magnitude 0.7 --seed 12
say "synthetic base + 2 finetunes written"

# the SAE trains on rows the studies do not use (the studies take the first $TOKENS tokens)
"$HERE/train.sh" --model "$M/base" --hook "$HOOK" --data "$DATA" --ctx "$CTX" --out "$OUT/sae" \
    --tokens "$TRAIN_TOKENS" --skip-rows $((TOKENS / CTX)) \
    -- --d-sae 256 --k 8 --batch 1024 --steps 400 --lr 3e-3 --dec-init-norm 0.5 --seed 1 --model-name demo-base
say "demo SAE trained ($TRAIN_TOKENS tokens)"

for ft in mild strong; do
  "$HERE/transfer.sh" --base "$M/base" --finetune "$M/ft-$ft" --sae "$OUT/sae" --data "$DATA" \
      --tokens "$TOKENS" --outlier-multiplier 3 --ablate --out "$OUT/$ft" --title "ft-$ft" --no-report ||
      { echo "demo.sh: error: the base vs ft-$ft study failed" >&2; exit 1; }
  say "study base vs ft-$ft ($TOKENS tokens)"
done
sf-report --title "saeflow demo (synthetic model): mild vs strong finetune" -o "$OUT/report.html" \
    "$OUT/mild/result.json" "$OUT/strong/result.json"
say "report written"
echo "demo: report: $OUT/report.html  (studies: $OUT/mild/result.json, $OUT/strong/result.json)"

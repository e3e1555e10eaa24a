#!/usr/bin/env bash
# pipelines/train.sh - train an SAE on a model's activations: sf-tokenize | sf-forward --hook | sf-train.
# Activations stream straight into sf-train (which holds up to --tokens of them in memory).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'USAGE'
usage: pipelines/train.sh --model DIR --hook H --data FILE... --out SAE_DIR [options] [-- SF_TRAIN_FLAGS...]

  --model DIR        Hugging Face checkpoint (its tokenizer is used)
  --hook H           e.g. blocks.2.hook_resid_post
  --data FILE...     JSONL ({"text": ...}) or text files
  --out SAE_DIR      where sf-train writes the SAE (SAELens format)
  --tokens N         training tokens (default 65536)
  --ctx N            context size (default 128)
  --bos | --no-bos   default --bos
  --skip-rows K      leave out the first K rows (e.g. the rows a study will use)
  -- FLAGS...        passed to sf-train (e.g. -- --d-sae 512 --l1 1 --steps 1000 --progress)
Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error; 3 truncated stream.

example:
  pipelines/train.sh --model m/base --hook blocks.2.hook_resid_post --data d.jsonl --out sae \
      -- --d-sae 256 --steps 300 --progress
USAGE
}
MODEL="" HOOK="" DATA=() OUT="" TOKENS=65536 CTX=128 BOSFLAG=--bos SKIP=0 TRAIN=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=${2:?}; shift 2 ;;
    --hook) HOOK=${2:?}; shift 2 ;;
    --data) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do DATA+=("$1"); shift; done ;;
    --out) OUT=${2:?}; shift 2 ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --ctx) CTX=${2:?}; shift 2 ;;
    --bos) BOSFLAG=--bos; shift ;;
    --no-bos) BOSFLAG=--no-bos; shift ;;
    --skip-rows) SKIP=${2:?}; shift 2 ;;
    --) shift; TRAIN=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "train.sh: error: unknown option '$1'" >&2; echo "try 'pipelines/train.sh --help'" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] && [ -n "$HOOK" ] && [ -n "$OUT" ] && [ ${#DATA[@]} -gt 0 ] || {
  echo "train.sh: error: --model, --hook, --data and --out are required" >&2; exit 2; }
mkdir -p "$OUT" || exit 1
sf_lock "$OUT"       # the lock transfer.sh takes: a second run into the same --out refuses (exit 1), naming this one
sf_setup train.sh
sf_fifo tok acts
sf_stage sf-tokenize sf-tokenize --tokenizer "$MODEL" --ctx "$CTX" "$BOSFLAG" --skip-rows "$SKIP" \
    --max-tokens "$TOKENS" -q "${DATA[@]}" -o "$SF_TMP/tok"
sf_stage sf-forward sf-forward --model "$MODEL" --hook "$HOOK" -q -i "$SF_TMP/tok" -o "$SF_TMP/acts"
sf_stage sf-train sf-train -i "$SF_TMP/acts" -o "$OUT" --max-tokens "$TOKENS" "${TRAIN[@]}"
sf_wait_all || exit $?

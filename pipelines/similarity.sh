#!/usr/bin/env bash
# pipelines/similarity.sh - activation similarity only (no SAE): the same tokens through both
# models, sf-compare per token, sf-reduce to the "similarity" block of SPEC section 4.
#   sf-tokenize ─ tee ─┬─ sf-forward BASE --hook H ─┐
#                      └─ sf-forward FT   --hook H ─┴─ sf-compare ─ sf-reduce
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
usage() {
  cat <<'USAGE'
usage: pipelines/similarity.sh --base DIR --finetune DIR --hook H --data FILE... [options]

  --base DIR, --finetune DIR   Hugging Face checkpoints (the base's tokenizer is used)
  --hook H                     e.g. blocks.6.hook_resid_post
  --data FILE...               JSONL ({"text": ...}) or text files
  --tokens N                   token budget (default 256000)
  --ctx N                      context size (default 1024)
  --bos | --no-bos             default --bos
  --rows N                     rows per frame (default 8)
  --out FILE                   the JSON (default: stdout)
  --keep-sim FILE.zst          also save the sim stream
Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error; 3 truncated stream.

example:
  pipelines/similarity.sh --base m/gemma-2b --finetune m/gemma-2b-python --hook blocks.6.hook_resid_post \
      --data code.jsonl --ctx 1024 --rows 5 --tokens 256000 --out sim.json
USAGE
}
BASE="" FT="" HOOK="" DATA=() TOKENS=256000 CTX=1024 BOSFLAG=--bos ROWS=8 OUT=- KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=${2:?}; shift 2 ;;
    --finetune) FT=${2:?}; shift 2 ;;
    --hook) HOOK=${2:?}; shift 2 ;;
    --data) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do DATA+=("$1"); shift; done ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --ctx) CTX=${2:?}; shift 2 ;;
    --bos) BOSFLAG=--bos; shift ;;
    --no-bos) BOSFLAG=--no-bos; shift ;;
    --rows) ROWS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --keep-sim) KEEP=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) sf_usage_error "unknown option '$1'" ;;
  esac
done
[ -n "$BASE" ] && [ -n "$FT" ] && [ -n "$HOOK" ] && [ ${#DATA[@]} -gt 0 ] ||
  sf_usage_error "--base, --finetune, --hook and --data are required"
sf_setup similarity.sh
T=$SF_TMP
VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)
LIMIT=(); [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
sf_fifo tok tok.base tok.finetune acts.base acts.finetune sim
sf_stage sf-tokenize sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" --max-tokens "$TOKENS" \
    -q "${DATA[@]}" -o "$T/tok"
sf_stage "tee (tokens)" sf_tee "$T/tok" "$T/tok.base" "$T/tok.finetune"
sf_stage "sf-forward (base)" sf-forward --model "$BASE" --hook "$HOOK" -q -i "$T/tok.base" -o "$T/acts.base"
sf_stage "sf-forward (finetune)" sf-forward --model "$FT" --hook "$HOOK" "${LIMIT[@]}" -q -i "$T/tok.finetune" -o "$T/acts.finetune"
sf_stage sf-compare sf-compare --base "$T/acts.base" --finetune "$T/acts.finetune" -q -o "$T/sim"
if [ -n "$KEEP" ]; then
  sf_fifo sim.r sim.k
  sf_stage "tee (sim)" sf_tee "$T/sim" "$T/sim.r" "$T/sim.k"
  sf_stage zstd sf_zstd "$T/sim.k" "$KEEP"
  SIM=$T/sim.r
else
  SIM=$T/sim
fi
sf_stage sf-reduce sf-reduce -i "$SIM" -q -o "$OUT"
sf_wait_all || exit $?

#!/usr/bin/env bash
# pipelines/transfer.sh - the whole study: does an SAE trained on BASE still work on FINETUNE?
#
# Tokenizes once and feeds both models the same tokens (tee into fifos), runs both branches
# concurrently, streaming, and reduces everything in one pass:
#
#   sf-tokenize ─ tee ─┬─ sf-forward BASE --hook H ─ sf-outliers ─ sf-encode --splice ─ tee ─┬─ sf-reduce --base
#                      │                                                                     └─ sf-forward --from H --loss
#                      └─ sf-forward FT   --hook H ─ sf-outliers ─ sf-encode --splice ─ tee ─┬─ sf-reduce --finetune
#                                                                                            └─ sf-forward --from H --loss
#   then sf-report.
# Activations never touch the disk unless --keep-streams DIR asks (then DIR/{base,finetune}.zst
# hold the encoded acts streams and DIR/loss-{base,finetune}.zst the loss streams; sf-cat and
# sf-reduce read them). The outlier rule is always the base model's: --outlier-multiplier
# estimates the norm scalar on the base activations of the first --outlier-estimate tokens in
# a short pre-pass, then both branches use it. A failing stage stops everything; the message
# names it; no process is left behind.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: pipelines/transfer.sh --base DIR --finetune DIR --sae DIR --data FILE... [options]

Runs the SAE transfer study (proto/PROTOCOL.md section 6) of one base/finetune pair and writes
OUT/result.json (sf-reduce, SPEC section 4) and OUT/report.html (sf-report).

  --base DIR, --finetune DIR   Hugging Face checkpoint directories (the base's tokenizer is used)
  --sae DIR                    SAELens SAE trained on the base
  --data FILE...               JSONL ({"text": ...}) or text files (one or more)
  --tokens N                   token budget (default 256000, the seed's)
  --ctx N                      context size (default: the SAE's context_size)
  --bos | --no-bos             BOS at every row (default: the SAE's prepend_bos)
  --hook H                     hook (default: the SAE's hook_name)
  --rows N                     rows per frame (default 8)
  --outlier-max-norm T         outlier if |x| > T (Mistral-7B: 200)
  --outlier-multiplier M       outlier if s*|x| > M*sqrt(d_model), s = sqrt(d_model)/E|x| on base
  --outlier-estimate N         tokens for that estimate (default 4096)
  --outlier-norm-scalar S      use this s instead of estimating it (Gemma-2b in the seed: 0.31279)
                               (no outlier rule given: no token is filtered)
  --ablate                     also the zero-ablation CE and KL (ce_recovered)
  --out DIR                    output directory (default study-out); one run at a time: a
                               second run into DIR refuses (exit 1) while DIR/.lock is held
  --keep-streams DIR           also save the streams as .zst files (see above)
  --threads N                  threads per compute stage (default 1; both branches run at once)
  --title TEXT                 a name for the study in the report (default: FINETUNE's basename)
  --no-report                  skip sf-report
  --progress                   a progress line (sf-reduce's: rows, tokens/s, ETA)
  -v                           print each stage's command line
Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error; 3 a stream was truncated.

examples (the seed's settings: ctx 1024, BOS, 50 frames x 5 rows = 256,000 tokens; the SAE's
cfg.json gives the hook):
  pipelines/transfer.sh --base m/gemma-2b --finetune m/gemma-2b-python --sae saes/gemma-2b-res \
      --data code.jsonl --ctx 1024 --rows 5 --tokens 256000 --outlier-norm-scalar 0.31279 \
      --outlier-multiplier 2 --ablate --progress --out gemma-python
  pipelines/transfer.sh --base m/Mistral-7B-v0.1 --finetune m/MetaMath-Mistral-7B --sae saes/mistral-7b-res \
      --data math.jsonl --ctx 1024 --rows 5 --tokens 256000 --outlier-max-norm 200 --out mistral-metamath
  pipelines/transfer.sh --base stories260k --finetune stories260k-ft-mild \
      --sae stories260k-L2-relu --data stories.jsonl --tokens 16384 --keep-streams streams/
EOF
}

BASE="" FT="" SAE="" DATA=() TOKENS=256000 CTX="" BOS="" HOOK="" ROWS=8 MAXNORM="" MULT="" EST=4096
NSCALAR="" ABLATE="" OUT=study-out KEEP="" THREADS=1 TITLE="" REPORT=1 PROGRESS=--no-progress
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=${2:?}; shift 2 ;;
    --finetune) FT=${2:?}; shift 2 ;;
    --sae) SAE=${2:?}; shift 2 ;;
    --data) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do DATA+=("$1"); shift; done ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --ctx) CTX=${2:?}; shift 2 ;;
    --bos) BOS=true; shift ;;
    --no-bos) BOS=false; shift ;;
    --hook) HOOK=${2:?}; shift 2 ;;
    --rows) ROWS=${2:?}; shift 2 ;;
    --outlier-max-norm) MAXNORM=${2:?}; shift 2 ;;
    --outlier-multiplier) MULT=${2:?}; shift 2 ;;
    --outlier-estimate) EST=${2:?}; shift 2 ;;
    --outlier-norm-scalar) NSCALAR=${2:?}; shift 2 ;;
    --ablate) ABLATE=--ablate; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --keep-streams) KEEP=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --title) TITLE=${2:?}; shift 2 ;;
    --no-report) REPORT=""; shift ;;
    --progress) PROGRESS=--progress; shift ;;
    -v) SF_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) sf_usage_error "unknown option '$1'" ;;
  esac
done
[ -n "$BASE" ] && [ -n "$FT" ] && [ -n "$SAE" ] && [ ${#DATA[@]} -gt 0 ] || sf_usage_error "--base, --finetune, --sae and --data are required"
for d in "$BASE" "$FT" "$SAE"; do [ -d "$d" ] || sf_usage_error "$d: not a directory"; done
for f in "${DATA[@]}"; do [ -r "$f" ] || sf_usage_error "$f: cannot read"; done
[ -z "$MAXNORM" ] || [ -z "$MULT" ] || sf_usage_error "--outlier-max-norm and --outlier-multiplier exclude each other"
[ -z "$NSCALAR" ] || [ -n "$MULT" ] || sf_usage_error "--outlier-norm-scalar needs --outlier-multiplier"
CFG="$SAE/cfg.json"
[ -r "$CFG" ] || sf_usage_error "$CFG: cannot read"
[ -n "$HOOK" ] || HOOK=$(sf_cfg_get "$CFG" hook_name)
[ -n "$HOOK" ] || HOOK=$(sf_cfg_get "$CFG" hook_point)
[ -n "$CTX" ] || CTX=$(sf_cfg_get "$CFG" context_size)
[ -n "$BOS" ] || BOS=$(sf_cfg_get "$CFG" prepend_bos)
[ -n "$HOOK" ] || sf_usage_error "no --hook and no hook_name in $CFG"
[ -n "$CTX" ] && [ "$CTX" != null ] || CTX=128
[ "$BOS" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
[ -n "$TITLE" ] || TITLE=$(basename "$FT")

mkdir -p "$OUT" || exit 1
sf_lock "$OUT"       # a second run into the same --out refuses (exit 1), naming this one
rm -f "$OUT/result.json" "$OUT/report.html"    # never leave an old result beside a failed run
[ -n "$KEEP" ] && mkdir -p "$KEEP"
sf_setup transfer.sh
T=$SF_TMP
TOK=(sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" --max-tokens "$TOKENS" -q "${DATA[@]}")
VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)

# --- the outlier rule, from the base model ---------------------------------------------------
OUTL=()
if [ -n "$MAXNORM" ]; then
  OUTL=(--max-norm "$MAXNORM")
elif [ -n "$MULT" ] && [ -n "$NSCALAR" ]; then
  OUTL=(--norm-scalar "$NSCALAR" --multiplier "$MULT")
elif [ -n "$MULT" ]; then
  sf_fifo est.tok est.acts est.out
  sf_stage "sf-tokenize (estimate)" sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" \
      --max-tokens "$EST" -q "${DATA[@]}" -o "$T/est.tok"
  sf_stage "sf-forward (estimate, base)" sf-forward --model "$BASE" --hook "$HOOK" --threads "$THREADS" -q -i "$T/est.tok" -o "$T/est.acts"
  sf_stage "sf-outliers (estimate)" sf-outliers --estimate "$EST" --multiplier "$MULT" -q -i "$T/est.acts" -o "$T/est.out"
  sf_stage "sf-cat (estimate)" sf_header "$T/est.out" "$T/est.json"
  sf_wait_all || exit $?
  S=$(sf_header_get "$T/est.json" norm_scalar) ||
    { echo "transfer.sh: error: stage sf-outliers (estimate) wrote no norm_scalar" >&2; exit 1; }
  OUTL=(--norm-scalar "$S" --multiplier "$MULT")
fi

# --- the study ------------------------------------------------------------------------------
# the loss branch writes its (small) stream to a file first: sf-reduce reads the loss pair only
# after the acts pair, and a loss fifo that nobody reads yet would stall the acts branch
sf_loss() { # MODEL IN SAVE FIFO
  sf-forward --model "$1" --from "$HOOK" --loss $ABLATE --threads "$THREADS" -q -i "$2" -o "$3" || return $?
  case "$3" in *.zst) zstd -q -d -c "$3" > "$4" ;; *) cat "$3" > "$4" ;; esac
}

sf_fifo tok.in tok.base tok.finetune
sf_stage sf-tokenize "${TOK[@]}" -o "$T/tok.in"
sf_stage "tee (tokens)" sf_tee "$T/tok.in" "$T/tok.base" "$T/tok.finetune"
for X in base finetune; do
  [ $X = base ] && M=$BASE || M=$FT
  sf_fifo acts.$X mark.$X enc.$X lossin.$X red.$X lossred.$X
  LIMIT=(); [ $X = finetune ] && [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
  sf_stage "sf-forward ($X)" sf-forward --model "$M" --hook "$HOOK" "${LIMIT[@]}" --threads "$THREADS" -q -i "$T/tok.$X" -o "$T/acts.$X"
  IN=$T/acts.$X
  if [ ${#OUTL[@]} -gt 0 ]; then
    sf_stage "sf-outliers ($X)" sf-outliers "${OUTL[@]}" -q -i "$IN" -o "$T/mark.$X"
    IN=$T/mark.$X
  fi
  sf_stage "sf-encode ($X)" sf-encode --sae "$SAE" --splice --threads "$THREADS" -q -i "$IN" -o "$T/enc.$X"
  if [ -n "$KEEP" ]; then
    sf_fifo keep.$X
    sf_stage "tee ($X)" sf_tee "$T/enc.$X" "$T/lossin.$X" "$T/red.$X" "$T/keep.$X"
    sf_stage "zstd ($X)" sf_zstd "$T/keep.$X" "$KEEP/$X.zst"
    LOSSFILE=$KEEP/loss-$X.zst
  else
    sf_stage "tee ($X)" sf_tee "$T/enc.$X" "$T/lossin.$X" "$T/red.$X"
    LOSSFILE=$T/loss.$X
  fi
  sf_stage "sf-forward --from ($X)" sf_loss "$M" "$T/lossin.$X" "$LOSSFILE" "$T/lossred.$X"
done
sf_stage sf-reduce sf-reduce --base "$T/red.base" --finetune "$T/red.finetune" \
    --base "$T/lossred.base" --finetune "$T/lossred.finetune" \
    --base-model "$BASE" --finetune-model "$FT" --sae "$SAE" "$PROGRESS" -o "$OUT/result.json.tmp"
sf_wait_all || exit $?
mv "$OUT/result.json.tmp" "$OUT/result.json"

if [ -n "$REPORT" ]; then
  sf-report --title "$TITLE" -o "$OUT/report.html" "$OUT/result.json" || {
    echo "transfer.sh: error: stage sf-report failed" >&2; exit 1; }
fi
echo "transfer.sh: wrote $OUT/result.json${REPORT:+ and $OUT/report.html}" >&2

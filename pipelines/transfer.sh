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
#
# Sharded (issue 13; README "Scaling out"): --plan OUT fixes the study (settings, the outlier
# norm scalar, content hashes, the frame count) in OUT/study.json; --from-plan OUT --shard K/N
# runs frames [K*F/N, (K+1)*F/N) of it into OUT/shards/K-of-N.json (skipped when that file is
# there with the same plan hash); --merge-plan OUT merges them into OUT/result.json (+ report).
# pipelines/parallel.sh and pipelines/slurm.sh drive these three.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: pipelines/transfer.sh --base DIR --finetune DIR --sae DIR --data FILE... [options]
       pipelines/transfer.sh --plan OUT --base DIR --finetune DIR --sae DIR --data FILE... [options]
       pipelines/transfer.sh --from-plan OUT --shard K/N [--threads N] [--progress]
       pipelines/transfer.sh --merge-plan OUT [--shards N] [--title TEXT] [--no-report]

Runs the SAE transfer study (proto/PROTOCOL.md section 6) of one base/finetune pair and writes
OUT/result.json (sf-reduce, PROTOCOL section 5), OUT/features.jsonl (every feature's figures and
top contexts, one JSON line each) and OUT/report.html (sf-report, with feature cards).

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
  --progress                   a progress line (sf-reduce's: rows, tokens/s, ETA; first the weight
                               deviation's mean and max)
The weight deviation ||A-B||/||A|| of every tensor (the seed's cheap predictor) is computed first,
by sf-reduce before any token reaches it; result.json's weight_deviation has it per tensor, layer
and tensor kind, and the report plots it.
  --acts-base EP --acts-finetune EP
                               take the activations at the hook from these streams (files, fifos,
                               ZeroMQ endpoints) instead of tokenizing and running sf-forward:
                               pipelines/sweep.sh feeds every SAE from one multi-hook forward pass
                               (also with --from-plan --shard: the streams must hold the shard's rows)
  -v                           print each stage's command line
  -q                           errors only (no progress notes)
Sharded runs (the same numbers as one pass; see README "Scaling out"):
  --plan OUT                   only plan the study: OUT/study.json holds every setting, the outlier
                               norm scalar (estimated once, on the base), sha256 of both checkpoints,
                               the SAE and the data, the row and frame counts, and its plan_hash;
                               an OUT/study.json of another plan is refused (exit 1)
  --from-plan OUT --shard K/N  run shard K of N (0 <= K < N <= frames): frames [K*F/N, (K+1)*F/N)
                               into OUT/shards/K-of-N.json (atomically); exits 0 at once when that
                               file exists with the plan's hash (resume); first checks that both
                               checkpoints, the SAE and the data still have the plan's sha256
                               (exit 1 naming the one that differs; --no-verify skips it)
  --merge-plan OUT             sf-reduce --merge --plan OUT/study.json OUT/shards/*-of-N.json into
                               OUT/result.json and OUT/report.html; refuses (exit 1, one line) a
                               missing shard, one given twice, overlaps, gaps, another plan
  --shards N                   with --merge-plan: merge the N-shard files (default: the only N there)
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
MODE=single PLANDIR="" SHARD="" NSHARDS="" ACTSB="" ACTSF="" QUIET="" NOVERIFY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sae) SAE=${2:?}; shift 2 ;;
    --hook) HOOK=${2:?}; shift 2 ;;
    --outlier-norm-scalar) NSCALAR=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --keep-streams) KEEP=${2:?}; shift 2 ;;
    --progress) PROGRESS=--progress; shift ;;
    -q) QUIET=1; shift ;;
    --no-verify) NOVERIFY=1; shift ;;
    --acts-base) ACTSB=${2:?}; shift 2 ;;
    --acts-finetune) ACTSF=${2:?}; shift 2 ;;
    --plan) MODE=plan; PLANDIR=${2:?}; shift 2 ;;
    --from-plan) MODE=shard; PLANDIR=${2:?}; shift 2 ;;
    --shard) SHARD=${2:?}; shift 2 ;;
    --merge-plan) MODE=merge; PLANDIR=${2:?}; shift 2 ;;
    --shards) NSHARDS=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) sf_study_flag "$@"; [ "$SF_SHIFT" -gt 0 ] || sf_usage_error "unknown option '$1'"; shift "$SF_SHIFT" ;;
  esac
done

# --- the outlier rule, from the base model: sets OUTL (sf-outliers flags) and S --------------
estimate_outliers() {
  OUTL=() S=""
  if [ -n "$MAXNORM" ]; then
    OUTL=(--max-norm "$MAXNORM")
  elif [ -n "$MULT" ] && [ -n "$NSCALAR" ]; then
    S=$NSCALAR; OUTL=(--norm-scalar "$NSCALAR" --multiplier "$MULT")
  elif [ -n "$MULT" ]; then
    sf_fifo est.tok est.acts est.out
    sf_stage "sf-tokenize (estimate)" sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" \
        --max-tokens "$EST" -q "${DATA[@]}" -o "$T/est.tok"
    sf_stage "sf-forward (estimate, base)" sf-forward --model "$BASE" --hook "$HOOK" --threads "$THREADS" -q -i "$T/est.tok" -o "$T/est.acts"
    sf_stage "sf-outliers (estimate)" sf-outliers --estimate "$EST" --multiplier "$MULT" -q -i "$T/est.acts" -o "$T/est.out"
    sf_stage "sf-cat (estimate)" sf_header "$T/est.out" "$T/est.json"
    sf_wait_all || exit $?
    S=$(sf_json_get "$T/est.json" meta.norm_scalar) ||
      { echo "transfer.sh: error: stage sf-outliers (estimate) wrote no norm_scalar" >&2; exit 1; }
    OUTL=(--norm-scalar "$S" --multiplier "$MULT")
  fi
}

# --- the study ------------------------------------------------------------------------------
# the loss branch writes its (small) stream to a file first (kept with --keep-streams); sf-reduce
# drains the loss pair while it reduces the acts pair, so either order of arrival is fine
sf_loss() { # MODEL IN SAVE FIFO
  sf-forward --model "$1" --from "$HOOK" --loss $ABLATE --threads "$THREADS" -q -i "$2" -o "$3" || return $?
  case "$3" in *.zst) zstd -q -d -c "$3" > "$4" ;; *) cat "$3" > "$4" ;; esac
}

# run_study RESULT: the two branches over the tokens of sf-tokenize ... "${TX[@]}" into RESULT
# via sf-reduce ... "${RX[@]}"
run_study() {
  local X M IN LOSSFILE LIMIT
  if [ -z "$ACTSB" ]; then
    sf_fifo tok.in tok.base tok.finetune
    sf_stage sf-tokenize sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" "${TX[@]}" -q "${DATA[@]}" -o "$T/tok.in"
    sf_stage "tee (tokens)" sf_tee "$T/tok.in" "$T/tok.base" "$T/tok.finetune"
  fi
  for X in base finetune; do
    [ $X = base ] && M=$BASE || M=$FT
    sf_fifo acts.$X mark.$X enc.$X lossin.$X red.$X lossred.$X
    LIMIT=(); [ $X = finetune ] && [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
    if [ -n "$ACTSB" ]; then   # activations from outside (sweep.sh)
      [ $X = base ] && IN=$ACTSB || IN=$ACTSF
    else
      sf_stage "sf-forward ($X)" sf-forward --model "$M" --hook "$HOOK" "${LIMIT[@]}" --threads "$THREADS" -q -i "$T/tok.$X" -o "$T/acts.$X"
      IN=$T/acts.$X
    fi
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
      --base "$T/lossred.base" --finetune "$T/lossred.finetune" "${RX[@]}" "$PROGRESS" -o "$1"
  sf_wait_all
}

# --- sharded runs ---------------------------------------------------------------------------
plan_error() { echo "transfer.sh: error: $*" >&2; exit 1; }

# the settings of PLANDIR/study.json into the variables the study uses; H = its plan hash
plan_read() {
  local P_outlier_max_norm="" P_outlier_multiplier="" P_outlier_norm_scalar="" P_ablate=false P_vocab_limit=""
  [ -r "$PLANDIR/study.json" ] || plan_error "$PLANDIR/study.json: no study plan (make one with pipelines/transfer.sh --plan $PLANDIR ...)"
  local vars; vars=$(sf_plan_vars "$PLANDIR/study.json") || plan_error "$PLANDIR/study.json: cannot read the plan"
  eval "$vars"
  H=$(sf_json_get "$PLANDIR/study.json" plan_hash) || plan_error "$PLANDIR/study.json: no plan_hash"
  BASE=$P_base FT=$P_finetune SAE=$P_sae DATA=("${P_data[@]}") CTX=$P_ctx HOOK=$P_hook ROWS=$P_rows
  [ "$P_bos" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
  FRAMES=$P_frames TOTAL_ROWS=$P_total_rows VOCAB=$P_vocab_limit
  OUTL=()
  [ -z "$P_outlier_max_norm" ] || OUTL=(--max-norm "$P_outlier_max_norm")
  [ -z "$P_outlier_multiplier" ] || OUTL=(--norm-scalar "$P_outlier_norm_scalar" --multiplier "$P_outlier_multiplier")
  [ "$P_ablate" = true ] && ABLATE=--ablate || ABLATE=""
  [ -n "$TITLE" ] || TITLE=$(sf_json_get "$PLANDIR/study.json" title 2>/dev/null || basename "$FT")
}

# The checkpoints, the SAE and the data are still what the plan hashed (a node with another copy,
# or a file changed since, would give numbers of another study). Costs one read of each.
plan_verify() { # WHO
  [ -z "$NOVERIFY" ] || return 0
  sf_plan_verify "$PLANDIR/study.json" "$1" base "$BASE"
  sf_plan_verify "$PLANDIR/study.json" "$1" finetune "$FT"
  sf_plan_verify "$PLANDIR/study.json" "$1" sae "$SAE"
  sf_plan_verify "$PLANDIR/study.json" "$1" data "${DATA[@]}"
}

shard_main() {
  [[ "$SHARD" =~ ^([0-9]+)/([0-9]+)$ ]] || sf_usage_error "--from-plan needs --shard K/N (0 <= K < N)"
  local K=$((10#${BASH_REMATCH[1]})) N=$((10#${BASH_REMATCH[2]}))
  [ "$N" -ge 1 ] && [ "$K" -lt "$N" ] || sf_usage_error "--shard $SHARD: K must be in 0..N-1"
  plan_read
  [ "$N" -le "$FRAMES" ] || sf_usage_error "--shard $SHARD: the plan has only $FRAMES frames"
  mkdir -p "$PLANDIR/shards" || exit 1
  local RES="$PLANDIR/shards/$K-of-$N.json" TMPRES="$PLANDIR/shards/.$K-of-$N.json.tmp"
  sf_lock "$PLANDIR/shards" ".$K-of-$N.lock"
  if sf_shard_done "$RES" "$H"; then
    note "shard $K/$N: $RES is there (plan ${H:0:12}), skipping"; exit 0
  fi
  local lo=$((FRAMES * K / N * ROWS)) hi=$((FRAMES * (K + 1) / N * ROWS))
  [ "$hi" -le "$TOTAL_ROWS" ] || hi=$TOTAL_ROWS
  plan_verify "shard $K/$N"
  rm -f "$RES" "$TMPRES"
  sf_setup transfer.sh
  T=$SF_TMP
  TX=(--skip-rows "$lo" --max-tokens "$(((hi - lo) * CTX))") RX=(--plan "$PLANDIR/study.json" --shard "$K/$N")
  run_study "$TMPRES" || { local rc=$?; rm -f "$TMPRES"; exit $rc; }
  mv "$TMPRES" "$RES"
  note "shard $K/$N (rows $lo:$hi): wrote $RES"
}

merge_main() {
  plan_read
  sf_lock "$PLANDIR"
  local files=() f
  shopt -s nullglob
  if [ -n "$NSHARDS" ]; then files=("$PLANDIR"/shards/*-of-"$NSHARDS".json)
  else files=("$PLANDIR"/shards/*-of-*.json); fi
  shopt -u nullglob
  [ ${#files[@]} -gt 0 ] || plan_error "$PLANDIR/shards: no shard results${NSHARDS:+ of $NSHARDS shards}"
  rm -f "$PLANDIR/result.json" "$PLANDIR/report.html" "$PLANDIR/features.jsonl"
  sf-reduce --merge --plan "$PLANDIR/study.json" "${files[@]}" --features-out "$PLANDIR/features.jsonl" \
      -o "$PLANDIR/result.json.tmp" || {
    local rc=$?; rm -f "$PLANDIR/result.json.tmp"; exit $rc; }
  mv "$PLANDIR/result.json.tmp" "$PLANDIR/result.json"
  wdev_line "$PLANDIR/result.json"
  report "$PLANDIR"
}

note() { [ -n "$QUIET" ] || echo "transfer.sh: $*" >&2; }

wdev_line() { # RESULT: one line with the weight deviation's mean and max (nothing without it)
  [ -z "$QUIET" ] || return 0
  python3 - "$1" <<'PY' >&2 || true
import json, sys
w = json.load(open(sys.argv[1])).get("weight_deviation")
if w and w.get("mean") is not None:
    L = max(w.get("by_layer") or [{}], key=lambda e: e.get("mean") or -1).get("layer")
    print("transfer.sh: weight deviation ||A-B||/||A||: mean %.4g, max %.4g (%s)%s" % (w["mean"], w["max"], w.get("max_tensor"),
          "" if L is None else ", largest layer mean: layer %d" % L))
PY
}

report() { # DIR
  if [ -n "$REPORT" ]; then
    sf-report --title "$TITLE" -o "$1/report.html" "$1/result.json" || {
      echo "transfer.sh: error: stage sf-report failed" >&2; exit 1; }
  fi
  note "wrote $1/result.json${REPORT:+ and $1/report.html}"
}

case $MODE in
  shard) shard_main; exit 0 ;;
  merge) merge_main; exit 0 ;;
esac

# the plan: absolute paths, the outlier scalar, the row count, the hashes -> PLANDIR/study.json
plan_main() {
  mkdir -p "$PLANDIR" || exit 1
  PLANDIR=$(cd "$PLANDIR" && pwd) BASE=$(cd "$BASE" && pwd) FT=$(cd "$FT" && pwd) SAE=$(cd "$SAE" && pwd)
  local i rows frames mb
  for i in "${!DATA[@]}"; do DATA[$i]=$(realpath -- "${DATA[$i]}"); done
  sf_lock "$PLANDIR"
  sf_setup transfer.sh
  T=$SF_TMP
  estimate_outliers
  rows=$(set -o pipefail; sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" --max-tokens "$TOKENS" \
      -q "${DATA[@]}" | sf-cat --summary | tail -n 1 | sed -n 's/^end .*rows=\([0-9]*\).*/\1/p') ||
    plan_error "stage sf-tokenize (counting rows) failed"
  [ -n "$rows" ] && [ "$rows" -gt 0 ] || plan_error "the data gives no row of $CTX tokens"
  frames=$(((rows + ROWS - 1) / ROWS))
  mb=$(du -cm "$BASE"/*.safetensors "$FT"/*.safetensors 2>/dev/null | tail -n 1 | cut -f1)
  local rule=none
  [ -z "$MAXNORM" ] || rule=max_norm
  [ -z "$MULT" ] || rule=relative
  SFP_BASE=$BASE SFP_FT=$FT SFP_SAE=$SAE SFP_TOKENS=$TOKENS SFP_CTX=$CTX SFP_BOS=$BOSFLAG SFP_HOOK=$HOOK \
  SFP_ROWS=$ROWS SFP_FRAMES=$frames SFP_TOTAL=$rows SFP_RULE=$rule SFP_MAXNORM=$MAXNORM SFP_MULT=$MULT \
  SFP_S=$S SFP_EST=$([ -n "$MULT" ] && [ -z "$NSCALAR" ] && echo "$EST") SFP_ABLATE=$ABLATE SFP_VOCAB=$VOCAB \
  SFP_HBASE=$(sf_dir_hash "$BASE") SFP_HFT=$(sf_dir_hash "$FT") SFP_HSAE=$(sf_dir_hash "$SAE") \
  SFP_HDATA=$(sf_files_hash "${DATA[@]}") SFP_THREADS=$THREADS SFP_MB=$((2 * ${mb:-0} + 1024)) SFP_TITLE=$TITLE \
    python3 - "$PLANDIR/study.json" "${DATA[@]}" <<'PY' || exit 1
import hashlib, json, os, sys
e = os.environ
def opt(k): return e.get(k) or None
out, data = sys.argv[1], sys.argv[2:]
s = {"base": e["SFP_BASE"], "finetune": e["SFP_FT"], "sae": e["SFP_SAE"], "base_sha256": e["SFP_HBASE"],
     "finetune_sha256": e["SFP_HFT"], "sae_sha256": e["SFP_HSAE"], "data": data, "data_sha256": e["SFP_HDATA"],
     "tokens": int(e["SFP_TOKENS"]), "ctx": int(e["SFP_CTX"]), "bos": e["SFP_BOS"] == "--bos", "hook": e["SFP_HOOK"],
     "rows": int(e["SFP_ROWS"]), "frames": int(e["SFP_FRAMES"]), "total_rows": int(e["SFP_TOTAL"]),
     "outlier_rule": e["SFP_RULE"], "outlier_max_norm": opt("SFP_MAXNORM"), "outlier_multiplier": opt("SFP_MULT"),
     "outlier_norm_scalar": opt("SFP_S"), "outlier_estimate_tokens": int(e["SFP_EST"]) if e.get("SFP_EST") else None,
     "ablate": e["SFP_ABLATE"] == "--ablate", "vocab_limit": opt("SFP_VOCAB")}
h = hashlib.sha256(json.dumps(s, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
doc = {"saeflow_plan": 1, "plan_hash": h, "settings": s, "title": e["SFP_TITLE"],
       "resources": {"threads": int(e["SFP_THREADS"]), "cpus_per_shard": 2 * int(e["SFP_THREADS"]),
                     "mem_mb_per_shard": int(e["SFP_MB"])}}
if os.path.exists(out):
    try: old = json.load(open(out)).get("plan_hash")
    except (ValueError, AttributeError): old = None
    if old != h:
        sys.exit("transfer.sh: error: %s: holds another plan (%s; this one is %s): remove it or plan into another directory"
                 % (out, str(old)[:12], h[:12]))
    print("transfer.sh: %s: the same plan (%s) is there already" % (out, h[:12]), file=sys.stderr); sys.exit(0)
with open(out + ".tmp", "w") as f: json.dump(doc, f, indent=1); f.write("\n")
os.replace(out + ".tmp", out)
print("transfer.sh: wrote %s (plan %s: %d rows in %d frames of %d)" % (out, h[:12], s["total_rows"], s["frames"], s["rows"]),
      file=sys.stderr)
PY
}

# --- one pass, or the plan ------------------------------------------------------------------
[ -n "$BASE" ] && [ -n "$FT" ] && [ -n "$SAE" ] && [ ${#DATA[@]} -gt 0 ] || sf_usage_error "--base, --finetune, --sae and --data are required"
for d in "$BASE" "$FT" "$SAE"; do [ -d "$d" ] || sf_usage_error "$d: not a directory"; done
for f in "${DATA[@]}"; do [ -r "$f" ] || sf_usage_error "$f: cannot read"; done
[ -z "$MAXNORM" ] || [ -z "$MULT" ] || sf_usage_error "--outlier-max-norm and --outlier-multiplier exclude each other"
[ -z "$NSCALAR" ] || [ -n "$MULT" ] || sf_usage_error "--outlier-norm-scalar needs --outlier-multiplier"
[ -z "$ACTSB$ACTSF" ] || { [ -n "$ACTSB" ] && [ -n "$ACTSF" ]; } || sf_usage_error "--acts-base and --acts-finetune go together"
[ -z "$ACTSB" ] || [ $MODE = single ] || sf_usage_error "--acts-base/--acts-finetune go with one pass or --from-plan (not --plan)"
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
VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)

[ $MODE = plan ] && { plan_main; exit 0; }

mkdir -p "$OUT" || exit 1
sf_lock "$OUT"       # a second run into the same --out refuses (exit 1), naming this one
rm -f "$OUT/result.json" "$OUT/report.html" "$OUT/features.jsonl"   # never leave an old result beside a failed run
[ -n "$KEEP" ] && mkdir -p "$KEEP"
sf_setup transfer.sh
T=$SF_TMP
estimate_outliers
TX=(--max-tokens "$TOKENS")
RX=(--base-model "$BASE" --finetune-model "$FT" --sae "$SAE" --features-out "$OUT/features.jsonl")
note "weight deviation of the checkpoints first (sf-reduce, before any token: the seed's cheap predictor)"
run_study "$OUT/result.json.tmp" || exit $?
mv "$OUT/result.json.tmp" "$OUT/result.json"
wdev_line "$OUT/result.json"
report "$OUT"

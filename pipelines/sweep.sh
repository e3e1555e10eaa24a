#!/usr/bin/env bash
# pipelines/sweep.sh - the whole network in one pass (issue 17): where does the finetune depart
# from the base, and which layers' SAEs can still be trusted on it?
#
# Each model runs once, to its deepest hook, emitting every hook (sf-forward --hook A,B,...: a
# multi-hook stream). One copy of both streams goes to sf-compare and sf-reduce: the similarity
# profile, one block per hook. Every SAE gets its hook's frames (sf-cat --hook H) and runs the
# single-SAE study on them (pipelines/transfer.sh --acts-base/--acts-finetune: outliers, encode,
# the loss from its own hook, sf-reduce); the weight deviation per layer comes from the
# checkpoints first. All of it goes into one OUT/result.json (PROTOCOL.md §5 "Sweeps").
#
#   sf-tokenize ─ tee ─┬─ sf-forward BASE --hook all,H1..Hk ─ tee ─┬─ sf-compare ─ sf-reduce   (profile)
#                      │                                          ├─ sf-cat --hook H1 ─┐
#                      │                                          └─ sf-cat --hook Hk ─┼─ transfer.sh --sae S1 ... Sk
#                      └─ sf-forward FT   (the same) ─ tee ─ ... ──────────────────────┘
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: pipelines/sweep.sh --base DIR --finetune DIR (--sae DIR... | --saes FOLDER) --data FILE... [options]

Runs both models once over the same tokens and writes OUT/result.json (PROTOCOL.md §5 "Sweeps"):
the activation similarity at every hook (global cos and L2, by position), the weight deviation
per layer, and for every SAE the transfer study at its hook (OUT/studies/NAME/result.json, as
pipelines/transfer.sh writes it); then OUT/report.html with a layer axis.

  --base DIR, --finetune DIR   Hugging Face checkpoints (the base's tokenizer is used)
  --sae DIR                    a SAELens SAE trained on the base (repeatable)
  --saes FOLDER                every subdirectory of FOLDER with a cfg.json (e.g. one per layer)
  --data FILE...               JSONL ({"text": ...}) or text files
  --hooks LIST                 the profile's hooks (default all: blocks.0.hook_resid_pre and every
                               block's hook_resid_post); the SAEs' hooks are always added
  --tokens N                   token budget (default 256000)
  --ctx N, --bos | --no-bos    default: the first SAE's context_size and prepend_bos (every SAE
                               gets the same tokens)
  --rows N                     rows per frame (default 8)
  --outlier-max-norm T         outlier if |x| > T, at every hook
  --outlier-multiplier M       outlier if s*|x| > M*sqrt(d_model), s estimated per hook on the base
  --outlier-estimate N         tokens for that estimate (default 4096)
  --ablate                     also the zero-ablation CE and KL (ce_recovered) per SAE
  --out DIR                    output directory (default sweep-out; locked for the run)
  --threads N                  threads per compute stage (default 1)
  --title TEXT                 a name for the sweep in the report (default: FINETUNE's basename)
  --no-report                  skip sf-report
  -v                           print each stage's command line
Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error; 3 a stream was truncated.
Memory: both forwards at once, plus one encode and one loss forward per SAE and model; each
sf-forward --from holds the blocks after its hook.

examples:
  pipelines/sweep.sh --base m/gemma-2b --finetune m/gemma-2b-python --saes saes/gemma-2b-res-jb \
      --data code.jsonl --ctx 1024 --rows 5 --tokens 256000 --outlier-multiplier 2 --ablate --out gemma-sweep
  pipelines/sweep.sh --base stories260k --finetune stories260k-ft-code --sae sae-L0 --sae sae-L2 \
      --data stories.jsonl --tokens 16384 --hooks all
EOF
}

BASE="" FT="" SAES=() DATA=() HOOKS=all TOKENS=256000 CTX="" BOS="" ROWS=8 MAXNORM="" MULT="" EST=4096
ABLATE="" OUT=sweep-out THREADS=1 TITLE="" REPORT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=${2:?}; shift 2 ;;
    --finetune) FT=${2:?}; shift 2 ;;
    --sae) SAES+=("${2:?}"); shift 2 ;;
    --saes) for d in "${2:?}"/*/; do [ -r "$d/cfg.json" ] && SAES+=("${d%/}"); done; shift 2 ;;
    --data) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do DATA+=("$1"); shift; done ;;
    --hooks) HOOKS=${2:?}; shift 2 ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --ctx) CTX=${2:?}; shift 2 ;;
    --bos) BOS=true; shift ;;
    --no-bos) BOS=false; shift ;;
    --rows) ROWS=${2:?}; shift 2 ;;
    --outlier-max-norm) MAXNORM=${2:?}; shift 2 ;;
    --outlier-multiplier) MULT=${2:?}; shift 2 ;;
    --outlier-estimate) EST=${2:?}; shift 2 ;;
    --ablate) ABLATE=--ablate; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --title) TITLE=${2:?}; shift 2 ;;
    --no-report) REPORT=""; shift ;;
    -v) SF_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) sf_usage_error "unknown option '$1'" ;;
  esac
done

[ -n "$BASE" ] && [ -n "$FT" ] && [ ${#DATA[@]} -gt 0 ] || sf_usage_error "--base, --finetune and --data are required"
[ ${#SAES[@]} -gt 0 ] || sf_usage_error "no SAE: give --sae DIR (repeatable) or --saes FOLDER"
for d in "$BASE" "$FT" "${SAES[@]}"; do [ -d "$d" ] || sf_usage_error "$d: not a directory"; done
for f in "${DATA[@]}"; do [ -r "$f" ] || sf_usage_error "$f: cannot read"; done
[ -z "$MAXNORM" ] || [ -z "$MULT" ] || sf_usage_error "--outlier-max-norm and --outlier-multiplier exclude each other"

# every SAE's hook, and one study directory name each (its basename; made unique)
SHOOKS=() NAMES=()
declare -A SEEN=()
for s in "${SAES[@]}"; do
  [ -r "$s/cfg.json" ] || sf_usage_error "$s/cfg.json: cannot read"
  h=$(sf_cfg_get "$s/cfg.json" hook_name)
  [ -n "$h" ] || sf_usage_error "$s/cfg.json: no hook_name"
  [[ "$h" =~ ^blocks\.[0-9]+\.hook_resid_(pre|post)$ ]] || sf_usage_error "$s: hook $h is not a residual-stream hook"
  n=$(basename "$s"); [ -z "${SEEN[$n]:-}" ] || n="$n-${#NAMES[@]}"
  SEEN[$n]=1; SHOOKS+=("$h"); NAMES+=("$n")
done
[ -n "$CTX" ] || CTX=$(sf_cfg_get "${SAES[0]}/cfg.json" context_size)
[ -n "$CTX" ] && [ "$CTX" != null ] || CTX=128
[ -n "$BOS" ] || BOS=$(sf_cfg_get "${SAES[0]}/cfg.json" prepend_bos)
[ "$BOS" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
[ -n "$TITLE" ] || TITLE=$(basename "$FT")
VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)
FHOOKS=$HOOKS; for h in "${SHOOKS[@]}"; do FHOOKS="$FHOOKS,$h"; done

mkdir -p "$OUT/studies" || exit 1
sf_lock "$OUT"
rm -f "$OUT/result.json" "$OUT/report.html"
sf_setup sweep.sh
T=$SF_TMP

echo "sweep.sh: weight deviation of the checkpoints first (per layer: the seed's cheap predictor)" >&2
sf-reduce --weights-only --base-model "$BASE" --finetune-model "$FT" -q -o "$T/wdev.json" ||
  { echo "sweep.sh: error: stage sf-reduce --weights-only failed" >&2; exit 1; }

OUTL=()
[ -z "$MAXNORM" ] || OUTL=(--outlier-max-norm "$MAXNORM")
[ -z "$MULT" ] || OUTL=(--outlier-multiplier "$MULT" --outlier-estimate "$EST")
sf_fifo tok tok.base tok.finetune
sf_stage sf-tokenize sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" --max-tokens "$TOKENS" \
    -q "${DATA[@]}" -o "$T/tok"
sf_stage "tee (tokens)" sf_tee "$T/tok" "$T/tok.base" "$T/tok.finetune"
for X in base finetune; do
  [ $X = base ] && M=$BASE || M=$FT
  LIMIT=(); [ $X = finetune ] && [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
  sf_fifo acts.$X cmp.$X
  OUTS=("$T/cmp.$X")
  for k in "${!SAES[@]}"; do sf_fifo raw.$X.$k sel.$X.$k; OUTS+=("$T/raw.$X.$k"); done
  sf_stage "sf-forward ($X)" sf-forward --model "$M" --hook "$FHOOKS" "${LIMIT[@]}" --threads "$THREADS" -q \
      -i "$T/tok.$X" -o "$T/acts.$X"
  sf_stage "tee ($X)" sf_tee "$T/acts.$X" "${OUTS[@]}"
  for k in "${!SAES[@]}"; do
    sf_stage "sf-cat --hook ${SHOOKS[$k]} ($X)" sf-cat --hook "${SHOOKS[$k]}" -i "$T/raw.$X.$k" -o "$T/sel.$X.$k"
  done
done
sf_fifo sim
sf_stage sf-compare sf-compare --base "$T/cmp.base" --finetune "$T/cmp.finetune" -q -o "$T/sim"
sf_stage "sf-reduce (profile)" sf-reduce -i "$T/sim" -q -o "$T/profile.json"
for k in "${!SAES[@]}"; do
  sf_stage "transfer.sh (${NAMES[$k]})" "$HERE/transfer.sh" --base "$BASE" --finetune "$FT" --sae "${SAES[$k]}" \
      --data "${DATA[@]}" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" "${OUTL[@]}" $ABLATE --threads "$THREADS" \
      --acts-base "$T/sel.base.$k" --acts-finetune "$T/sel.finetune.$k" --no-report -q --out "$OUT/studies/${NAMES[$k]}"
done
sf_wait_all || exit $?

# one document: the profile, the weight deviation, the studies in network order
SFW_TITLE=$TITLE SFW_BASE=$BASE SFW_FT=$FT python3 - "$OUT" "$T/profile.json" "$T/wdev.json" \
    "${#SAES[@]}" "${SAES[@]}" "${NAMES[@]}" <<'PY' || { echo "sweep.sh: error: writing $OUT/result.json failed" >&2; exit 1; }
import json, os, re, sys
out, prof, wdev, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
saes, names = sys.argv[5:5 + n], sys.argv[5 + n:5 + 2 * n]
def depth(h):
    m = re.match(r"blocks\.(\d+)\.hook_resid_(pre|post)$", h)
    return int(m.group(1)) + (m.group(2) == "post")
p = json.load(open(prof))
if "hooks" not in p:   # one hook only: the single-hook document is that hook's block
    p = {"saeflow": p.get("saeflow"), "tokens": p.get("tokens"), "rows": p.get("rows"), "ctx": p.get("ctx"),
         "hooks": [{k: v for k, v in p.items() if k not in ("saeflow", "provenance", "throughput", "partial")}],
         "throughput": p.get("throughput"), "warnings": p.get("warnings", []), "provenance": p.get("provenance")}
studies = []
for s, name in zip(saes, names):
    r = json.load(open(os.path.join(out, "studies", name, "result.json")))
    studies.append({"hook": r.get("hook"), "depth": depth(r.get("hook")), "sae": os.path.abspath(s),
                    "dir": "studies/" + name, "result": r})
studies.sort(key=lambda e: e["depth"])   # stable: SAEs at one hook keep their order
e = os.environ
doc = {"saeflow_sweep": 1, "saeflow": p.get("saeflow"), "title": e["SFW_TITLE"],
       "base": os.path.abspath(e["SFW_BASE"]), "finetune": os.path.abspath(e["SFW_FT"]),
       "tokens": p.get("tokens"), "ctx": p.get("ctx"), "hooks": [h["hook"] for h in p["hooks"]],
       "profile": p, "weight_deviation": json.load(open(wdev)).get("weight_deviation"),
       "studies": studies, "throughput": p.get("throughput")}
with open(os.path.join(out, "result.json.tmp"), "w") as f: json.dump(doc, f); f.write("\n")
os.replace(os.path.join(out, "result.json.tmp"), os.path.join(out, "result.json"))
print("sweep.sh: similarity profile (cos_mean by hook): " + ", ".join(
    "%s %.4f" % (h["hook"].replace("blocks.", "").replace(".hook_resid_", " "), h["similarity"]["cos_mean"])
    for h in p["hooks"] if h.get("similarity")), file=sys.stderr)
PY
if [ -n "$REPORT" ]; then
  sf-report --title "$TITLE" -o "$OUT/report.html" "$OUT/result.json" || {
    echo "sweep.sh: error: stage sf-report failed" >&2; exit 1; }
fi
echo "sweep.sh: wrote $OUT/result.json${REPORT:+ and $OUT/report.html}" >&2

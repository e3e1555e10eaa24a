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
#
# Sharded like transfer.sh (one plan, one merge): --plan OUT plans every SAE's study (transfer.sh
# --plan OUT/studies/NAME: its outlier scalar, hashes) and the sweep (OUT/sweep.json); --from-plan
# OUT --shard K/N runs rows K of N of all of it from one forward pass per model (each SAE's shard
# result, the profile's per-hook partials in OUT/profile/shards/K-of-N/); --merge-plan OUT merges.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: pipelines/sweep.sh --base DIR --finetune DIR (--sae DIR... | --saes FOLDER) --data FILE... [options]
       pipelines/sweep.sh --plan OUT --base DIR --finetune DIR (--sae DIR... | --saes FOLDER) --data FILE... [options]
       pipelines/sweep.sh --from-plan OUT --shard K/N [--threads N]
       pipelines/sweep.sh --merge-plan OUT [--shards N] [--title TEXT] [--no-report]

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
Sharded (the same numbers as one pass, within rounding; README "Scaling out"):
  --plan OUT                   plan every SAE's study (OUT/studies/NAME/study.json, as transfer.sh
                               --plan) and the sweep (OUT/sweep.json with its plan_hash)
  --from-plan OUT --shard K/N  rows of frames [K*F/N, (K+1)*F/N) of every study and of the profile,
                               from one forward per model; skipped when all its results are there
  --merge-plan OUT             merge the shards into OUT/result.json (+ report); a missing shard
                               or one of another plan is refused (exit 1, one line)
  --shards N                   with --merge-plan: the N-shard results (default: the only N there)
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
ABLATE="" OUT=sweep-out THREADS=1 TITLE="" REPORT=1 MODE=single SHARD="" NSHARDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sae) SAES+=("${2:?}"); shift 2 ;;
    --saes) for d in "${2:?}"/*/; do [ -r "$d/cfg.json" ] && SAES+=("${d%/}"); done; shift 2 ;;
    --hooks) HOOKS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --plan) MODE=plan; OUT=${2:?}; shift 2 ;;
    --from-plan) MODE=shard; OUT=${2:?}; shift 2 ;;
    --shard) SHARD=${2:?}; shift 2 ;;
    --merge-plan) MODE=merge; OUT=${2:?}; shift 2 ;;
    --shards) NSHARDS=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) sf_study_flag "$@"; [ "$SF_SHIFT" -gt 0 ] || sf_usage_error "unknown option '$1'"; shift "$SF_SHIFT" ;;
  esac
done

# --- the SAEs, settings: SAES, SHOOKS, NAMES, CTX, BOSFLAG, FHOOKS, VOCAB ------------------------
study_setup() {
  [ -n "$BASE" ] && [ -n "$FT" ] && [ ${#DATA[@]} -gt 0 ] || sf_usage_error "--base, --finetune and --data are required"
  [ ${#SAES[@]} -gt 0 ] || sf_usage_error "no SAE: give --sae DIR (repeatable) or --saes FOLDER"
  local d f s h n
  for d in "$BASE" "$FT" "${SAES[@]}"; do [ -d "$d" ] || sf_usage_error "$d: not a directory"; done
  for f in "${DATA[@]}"; do [ -r "$f" ] || sf_usage_error "$f: cannot read"; done
  [ -z "$MAXNORM" ] || [ -z "$MULT" ] || sf_usage_error "--outlier-max-norm and --outlier-multiplier exclude each other"
  SHOOKS=() NAMES=()
  declare -A seen=()
  for s in "${SAES[@]}"; do   # every SAE's hook, and one study directory name each (unique)
    [ -r "$s/cfg.json" ] || sf_usage_error "$s/cfg.json: cannot read"
    h=$(sf_cfg_get "$s/cfg.json" hook_name)
    [ -n "$h" ] || sf_usage_error "$s/cfg.json: no hook_name"
    [[ "$h" =~ ^blocks\.[0-9]+\.hook_resid_(pre|post)$ ]] || sf_usage_error "$s: hook $h is not a residual-stream hook"
    n=$(basename "$s"); [ -z "${seen[$n]:-}" ] || n="$n-${#NAMES[@]}"
    seen[$n]=1; SHOOKS+=("$h"); NAMES+=("$n")
  done
  [ -n "$CTX" ] || CTX=$(sf_cfg_get "${SAES[0]}/cfg.json" context_size)
  [ -n "$CTX" ] && [ "$CTX" != null ] || CTX=128
  [ -n "$BOS" ] || BOS=$(sf_cfg_get "${SAES[0]}/cfg.json" prepend_bos)
  [ "$BOS" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
  [ -n "$TITLE" ] || TITLE=$(basename "$FT")
  VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)
  FHOOKS=$HOOKS; for h in "${SHOOKS[@]}"; do FHOOKS="$FHOOKS,$h"; done
  OUTL=()
  [ -z "$MAXNORM" ] || OUTL=(--outlier-max-norm "$MAXNORM")
  [ -z "$MULT" ] || OUTL=(--outlier-multiplier "$MULT" --outlier-estimate "$EST")
}

# --- the pass: one forward per model, the profile, every SAE's study -----------------------
# run_pass TX PROFILE PER_SAE: tokenize with "${TX[@]}"; the sim stream goes to $PROFILE (a
# function: PROFILE SIMFIFO) and SAE k's two streams to transfer.sh "${PER_SAE[@]}" plus
# --acts-base/--acts-finetune and --out/--from-plan (function study_args K).
run_pass() {
  local X M k
  sf_fifo tok tok.base tok.finetune
  sf_stage sf-tokenize sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" "${TX[@]}" \
      -q "${DATA[@]}" -o "$T/tok"
  sf_stage "tee (tokens)" sf_tee "$T/tok" "$T/tok.base" "$T/tok.finetune"
  for X in base finetune; do
    [ $X = base ] && M=$BASE || M=$FT
    local LIMIT=() OUTS=("$T/cmp.$X")
    [ $X = finetune ] && [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
    sf_fifo acts.$X cmp.$X
    for k in "${!SHOOKS[@]}"; do sf_fifo raw.$X.$k sel.$X.$k; OUTS+=("$T/raw.$X.$k"); done
    sf_stage "sf-forward ($X)" sf-forward --model "$M" --hook "$FHOOKS" "${LIMIT[@]}" --threads "$THREADS" -q \
        -i "$T/tok.$X" -o "$T/acts.$X"
    sf_stage "tee ($X)" sf_tee "$T/acts.$X" "${OUTS[@]}"
    for k in "${!SHOOKS[@]}"; do
      sf_stage "sf-cat --hook ${SHOOKS[$k]} ($X)" sf-cat --hook "${SHOOKS[$k]}" -i "$T/raw.$X.$k" -o "$T/sel.$X.$k"
    done
  done
  sf_fifo sim
  sf_stage sf-compare sf-compare --base "$T/cmp.base" --finetune "$T/cmp.finetune" -q -o "$T/sim"
  $PROFILE "$T/sim"
  for k in "${!SHOOKS[@]}"; do
    local SA; mapfile -t SA < <(study_args "$k")
    sf_stage "transfer.sh (${NAMES[$k]})" "$HERE/transfer.sh" "${SA[@]}" --threads "$THREADS" -q \
        --acts-base "$T/sel.base.$k" --acts-finetune "$T/sel.finetune.$k"
  done
  sf_wait_all
}

# one document: the profile (a multi-hook sf-reduce document, or one single-hook document per
# hook), the weight deviation, the studies in network order -> OUT/result.json, then the report
assemble() { # WDEV PROFILE...
  SFW_TITLE=$TITLE SFW_BASE=$BASE SFW_FT=$FT python3 - "$OUT" "${NAMES[@]}" -- "${SAES[@]}" -- "$@" <<'PY' ||
import json, os, re, sys
a = sys.argv[1:]; out = a[0]; i = a.index("--"); j = a.index("--", i + 1)
names, saes, wdev, profs = a[1:i], a[i + 1:j], a[j + 1], a[j + 2:]
def depth(h):
    m = re.match(r"blocks\.(\d+)\.hook_resid_(pre|post)$", h)
    return int(m.group(1)) + (m.group(2) == "post")
def block(d): return {k: v for k, v in d.items() if k not in ("saeflow", "provenance", "throughput", "partial")}
docs = [json.load(open(f)) for f in profs]
if len(docs) == 1 and "hooks" in docs[0]: p = docs[0]
else:   # single-hook documents (merged shards, or a sweep of one hook): one block each
    warns = [dict(w, hook=d.get("hook"), message="%s: %s" % (d.get("hook"), w.get("message"))) for d in docs for w in d.get("warnings", [])]
    p = {"saeflow": docs[0].get("saeflow"), "tokens": docs[0].get("tokens"), "rows": docs[0].get("rows"),
         "ctx": docs[0].get("ctx"), "hooks": [block(d) for d in docs], "throughput": docs[0].get("throughput"),
         "warnings": warns, "provenance": {"merged_from": profs} if len(docs) > 1 else docs[0].get("provenance")}
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
  { echo "sweep.sh: error: writing $OUT/result.json failed" >&2; exit 1; }
  if [ -n "$REPORT" ]; then
    sf-report --title "$TITLE" -o "$OUT/report.html" "$OUT/result.json" || {
      echo "sweep.sh: error: stage sf-report failed" >&2; exit 1; }
  fi
  echo "sweep.sh: wrote $OUT/result.json${REPORT:+ and $OUT/report.html}" >&2
}

weight_deviation() { # FILE
  sf-reduce --weights-only --base-model "$BASE" --finetune-model "$FT" -q -o "$1" ||
    { echo "sweep.sh: error: stage sf-reduce --weights-only failed" >&2; exit 1; }
}

# --- one pass -----------------------------------------------------------------------------
single_profile() { sf_stage "sf-reduce (profile)" sf-reduce -i "$1" -q -o "$T/profile.json"; }
single_args() {
  printf '%s\n' --base "$BASE" --finetune "$FT" --sae "${SAES[$1]}" --data "${DATA[@]}" --ctx "$CTX" "$BOSFLAG" \
      --rows "$ROWS" "${OUTL[@]}" $ABLATE --no-report --out "$OUT/studies/${NAMES[$1]}"
}
single_main() {
  study_setup
  mkdir -p "$OUT/studies" || exit 1
  sf_lock "$OUT"
  rm -f "$OUT/result.json" "$OUT/report.html"
  sf_setup sweep.sh
  T=$SF_TMP
  echo "sweep.sh: weight deviation of the checkpoints first (per layer: the seed's cheap predictor)" >&2
  weight_deviation "$T/wdev.json"
  TX=(--max-tokens "$TOKENS") PROFILE=single_profile
  study_args() { single_args "$@"; }
  run_pass || exit $?
  assemble "$T/wdev.json" "$T/profile.json"
}

# --- sharded: one plan, shards, one merge --------------------------------------------------
plan_error() { echo "sweep.sh: error: $*" >&2; exit 1; }

plan_main() {
  study_setup
  mkdir -p "$OUT/studies" || exit 1
  OUT=$(cd "$OUT" && pwd) BASE=$(cd "$BASE" && pwd) FT=$(cd "$FT" && pwd)
  local k i hashes=()
  for i in "${!DATA[@]}"; do DATA[$i]=$(realpath -- "${DATA[$i]}"); done
  for k in "${!SAES[@]}"; do SAES[$k]=$(cd "${SAES[$k]}" && pwd); done
  sf_lock "$OUT"
  for k in "${!SAES[@]}"; do   # each SAE's study plan: its outlier scalar at its hook, the hashes
    "$HERE/transfer.sh" --plan "$OUT/studies/${NAMES[$k]}" --base "$BASE" --finetune "$FT" --sae "${SAES[$k]}" \
        --data "${DATA[@]}" --tokens "$TOKENS" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" "${OUTL[@]}" $ABLATE \
        --threads "$THREADS" --title "$TITLE" 2> "$OUT/.plan.err" || { cat "$OUT/.plan.err" >&2; plan_error "planning ${NAMES[$k]} failed"; }
    hashes+=("$(sf_json_get "$OUT/studies/${NAMES[$k]}/study.json" plan_hash)")
  done
  rm -f "$OUT/.plan.err"
  SWP_BASE=$BASE SWP_FT=$FT SWP_HOOKS=$FHOOKS SWP_TITLE=$TITLE SWP_VOCAB=$VOCAB python3 - "$OUT" \
      "${NAMES[@]}" -- "${SAES[@]}" -- "${SHOOKS[@]}" -- "${hashes[@]}" <<'PY' || exit 1
import hashlib, json, os, sys
a = sys.argv[1:]; out = a[0]; cuts = [i for i, x in enumerate(a) if x == "--"]
names, saes, hooks, hashes = a[1:cuts[0]], a[cuts[0] + 1:cuts[1]], a[cuts[1] + 1:cuts[2]], a[cuts[2] + 1:]
first = json.load(open(os.path.join(out, "studies", names[0], "study.json")))["settings"]
e = os.environ
s = {"base": e["SWP_BASE"], "finetune": e["SWP_FT"], "forward_hooks": e["SWP_HOOKS"], "vocab_limit": e["SWP_VOCAB"] or None,
     "sae_names": names, "sae_dirs": saes, "sae_hooks": hooks, "sae_plan_hashes": hashes}
for k in ("data", "data_sha256", "tokens", "ctx", "bos", "rows", "frames", "total_rows", "base_sha256", "finetune_sha256"):
    s[k] = first[k]
h = hashlib.sha256(json.dumps(s, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
doc = {"saeflow_sweep_plan": 1, "plan_hash": h, "settings": s, "title": e["SWP_TITLE"]}
path = os.path.join(out, "sweep.json")
if os.path.exists(path) and json.load(open(path)).get("plan_hash") != h:
    sys.exit("sweep.sh: error: %s holds another plan: remove it or plan into another directory" % path)
with open(path + ".tmp", "w") as f: json.dump(doc, f, indent=1); f.write("\n")
os.replace(path + ".tmp", path)
print("sweep.sh: wrote %s (plan %s: %d SAEs, %d rows in %d frames of %d)" % (path, h[:12], len(names), s["total_rows"],
      s["frames"], s["rows"]), file=sys.stderr)
PY
}

# the settings of OUT/sweep.json; H = its plan hash
plan_read() {
  [ -r "$OUT/sweep.json" ] || plan_error "$OUT/sweep.json: no sweep plan (make one with pipelines/sweep.sh --plan $OUT ...)"
  local vars; vars=$(sf_plan_vars "$OUT/sweep.json") || plan_error "$OUT/sweep.json: cannot read the plan"
  local P_vocab_limit=""
  eval "$vars"
  H=$(sf_json_get "$OUT/sweep.json" plan_hash) || plan_error "$OUT/sweep.json: no plan_hash"
  BASE=$P_base FT=$P_finetune DATA=("${P_data[@]}") CTX=$P_ctx ROWS=$P_rows FHOOKS=$P_forward_hooks VOCAB=$P_vocab_limit
  [ "$P_bos" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
  NAMES=("${P_sae_names[@]}") SAES=("${P_sae_dirs[@]}") SHOOKS=("${P_sae_hooks[@]}") FRAMES=$P_frames TOTAL_ROWS=$P_total_rows
  # the profile's hooks in stream order: as sf-forward lists them in its header (an empty stream)
  local list
  list=$(printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{"sf":1,"kind":"end","frames":0,"rows":0}' | sf-cat --pack |
         sf-forward --model "$BASE" --hook "$FHOOKS" -q | sf-cat --head 0 | head -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["meta"]["hook"])') ||
    plan_error "$BASE: cannot list the hooks $FHOOKS"
  IFS=, read -r -a PHOOKS <<<"$list"
  [ -n "$TITLE" ] || TITLE=$(sf_json_get "$OUT/sweep.json" title 2>/dev/null || basename "$FT")
}

shard_profile() { # SIMFIFO: one sf-reduce per hook (single-hook documents merge like transfer shards)
  local i outs=()
  for i in "${!PHOOKS[@]}"; do sf_fifo "psim.$i" "psel.$i"; outs+=("$T/psim.$i"); done
  sf_stage "tee (sim)" sf_tee "$1" "${outs[@]}"
  for i in "${!PHOOKS[@]}"; do
    sf_stage "sf-cat --hook ${PHOOKS[$i]} (sim)" sf-cat --hook "${PHOOKS[$i]}" -i "$T/psim.$i" -o "$T/psel.$i"
    sf_stage "sf-reduce (profile ${PHOOKS[$i]})" sf-reduce -i "$T/psel.$i" -q -o "$PDIR.tmp/$i.json"
  done
}

shard_main() {
  [[ "$SHARD" =~ ^([0-9]+)/([0-9]+)$ ]] || sf_usage_error "--from-plan needs --shard K/N (0 <= K < N)"
  K=$((10#${BASH_REMATCH[1]})) N=$((10#${BASH_REMATCH[2]}))
  [ "$N" -ge 1 ] && [ "$K" -lt "$N" ] || sf_usage_error "--shard $SHARD: K must be in 0..N-1"
  plan_read
  [ "$N" -le "$FRAMES" ] || sf_usage_error "--shard $SHARD: the plan has only $FRAMES frames"
  mkdir -p "$OUT/profile/shards" || exit 1
  sf_lock "$OUT/profile/shards" ".$K-of-$N.lock"
  PDIR=$OUT/profile/shards/$K-of-$N
  local k done=1
  [ "$(cat "$PDIR/plan_hash" 2>/dev/null)" = "$H" ] || done=0
  for k in "${!NAMES[@]}"; do [ -f "$OUT/studies/${NAMES[$k]}/shards/$K-of-$N.json" ] || done=0; done
  [ $done = 0 ] || { echo "sweep.sh: shard $K/$N: its results are there (plan ${H:0:12}), skipping" >&2; exit 0; }
  sf_plan_verify "$OUT/sweep.json" "shard $K/$N" base "$BASE"   # once here, not once per SAE
  sf_plan_verify "$OUT/sweep.json" "shard $K/$N" finetune "$FT"
  sf_plan_verify "$OUT/sweep.json" "shard $K/$N" data "${DATA[@]}"
  for k in "${!NAMES[@]}"; do sf_plan_verify "$OUT/studies/${NAMES[$k]}/study.json" "shard $K/$N" sae "${SAES[$k]}"; done
  for k in "${!NAMES[@]}"; do rm -f "$OUT/studies/${NAMES[$k]}/shards/$K-of-$N.json"; done   # all of it again
  rm -rf "$PDIR" "$PDIR.tmp"; mkdir -p "$PDIR.tmp"
  local lo=$((FRAMES * K / N * ROWS)) hi=$((FRAMES * (K + 1) / N * ROWS))
  [ "$hi" -le "$TOTAL_ROWS" ] || hi=$TOTAL_ROWS
  sf_setup sweep.sh
  T=$SF_TMP
  TX=(--skip-rows "$lo" --max-tokens "$(((hi - lo) * CTX))") PROFILE=shard_profile
  study_args() { printf '%s\n' --from-plan "$OUT/studies/${NAMES[$1]}" --shard "$K/$N" --no-verify; }
  run_pass || { local rc=$?; rm -rf "$PDIR.tmp"; exit $rc; }
  echo "$H" > "$PDIR.tmp/plan_hash"
  mv "$PDIR.tmp" "$PDIR"
  echo "sweep.sh: shard $K/$N (rows $lo:$hi): wrote $PDIR and every SAE's shard" >&2
}

merge_main() {
  plan_read
  sf_lock "$OUT"
  if [ -z "$NSHARDS" ]; then
    local ns; ns=$(ls -d "$OUT"/profile/shards/*-of-*/ 2>/dev/null | sed 's/.*-of-\([0-9]*\)\/$/\1/' | sort -u)
    [ -n "$ns" ] || plan_error "$OUT/profile/shards: no shard results"
    [ "$(wc -l <<<"$ns")" = 1 ] || plan_error "$OUT/profile/shards: results of several shard counts ($(tr '\n' ' ' <<<"$ns")): give --shards N"
    NSHARDS=$ns
  fi
  local k i files
  for ((k = 0; k < NSHARDS; k++)); do
    [ -d "$OUT/profile/shards/$k-of-$NSHARDS" ] || plan_error "missing shard $k/$NSHARDS (no $OUT/profile/shards/$k-of-$NSHARDS)"
    [ "$(cat "$OUT/profile/shards/$k-of-$NSHARDS/plan_hash")" = "$H" ] ||
      plan_error "shard $k/$NSHARDS is of another plan than $OUT/sweep.json (mixed plans)"
  done
  rm -f "$OUT/result.json" "$OUT/report.html"
  sf_setup sweep.sh
  T=$SF_TMP
  for k in "${!NAMES[@]}"; do
    "$HERE/transfer.sh" --merge-plan "$OUT/studies/${NAMES[$k]}" --shards "$NSHARDS" --no-report -q || exit $?
  done
  local profs=()
  for i in "${!PHOOKS[@]}"; do
    files=(); for ((k = 0; k < NSHARDS; k++)); do files+=("$OUT/profile/shards/$k-of-$NSHARDS/$i.json"); done
    sf-reduce --merge "${files[@]}" -q -o "$T/profile.$i.json" || plan_error "merging the profile at ${PHOOKS[$i]} failed"
    profs+=("$T/profile.$i.json")
  done
  weight_deviation "$T/wdev.json"
  assemble "$T/wdev.json" "${profs[@]}"
}

case $MODE in
  single) single_main ;;
  plan) plan_main ;;
  shard) shard_main ;;
  merge) merge_main ;;
esac

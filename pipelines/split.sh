#!/usr/bin/env bash
# pipelines/split.sh - the transfer study with its stages placed on given hosts (issue 14), for
# people who place stages rather than shard: the forward passes on the machine with the memory,
# the SAE on another, the reduce on a laptop. Every link between stages is a tcp:// ZeroMQ link
# (the writer binds its host's address, the reader connects; fan-out by repeated -o), so the
# numbers are those of pipelines/transfer.sh on one host, bit for bit.
#
#   tokenize@T ─┬─ forward BASE@F ─ outliers+encode@E ─┬─ reduce@R ─ result.json (+ report here)
#               │                                       └─ loss BASE@L ──┘
#               └─ forward FT@F   ─ outliers+encode@E ─┬─ reduce@R
#                                                       └─ loss FT@L ────┘
# Each stage starts through the launcher (default: ssh HOST; "local" runs here); every host needs
# this repository and its build at the same path, and OUT on a filesystem the reduce host writes
# and this host reads. A failing stage stops the others within seconds (abort frames,
# heartbeats: PROTOCOL.md §2); the message names it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"

usage() {
  cat <<'EOF'
usage: pipelines/split.sh --place tokenize=H,forward=H,encode=H,loss=H,reduce=H [options] \
           --base DIR --finetune DIR --sae DIR --data FILE... [study options]

  --place ROLE=HOST,...   where each role runs (unnamed roles: local); HOST "local" is this host
  --addr HOST=IP,...      the address each host's stages bind and are reached at (default: the
                          host name itself; local: 127.0.0.1)
  --launch CMD            how a stage starts on HOST: CMD with {host} replaced, then the stage's
                          command line (default: 'ssh -o BatchMode=yes {host}'; a test uses
                          'ip netns exec {host}')
  --port-base P           the first of the 10 tcp ports used (default 5600)
  --keys DIR              CURVE keys for every link (sf-cat --keygen DIR; the same DIR path on
                          every host); without it, binds beyond loopback use --insecure (said once)
  --out DIR               result.json and report.html (default split-out)
  study options           as pipelines/transfer.sh: --tokens, --ctx, --bos/--no-bos, --hook,
                          --rows, --outlier-max-norm, --outlier-multiplier (+ --outlier-norm-scalar,
                          else the scalar is estimated here first), --ablate, --threads, --title,
                          --no-report
Exit codes: 0 ok; 1 a stage failed (named on stderr); 2 usage error; 3 a stream was truncated.

example:
  pipelines/split.sh --place forward=gpu1,encode=cpu2,loss=gpu1 --addr gpu1=10.0.0.7,cpu2=10.0.0.8 \
      --keys ~/sf-keys --base m/gemma-2b --finetune m/gemma-2b-python --sae saes/gemma-2b-res \
      --data code.jsonl --ctx 1024 --rows 5 --tokens 256000 --outlier-norm-scalar 0.31279 \
      --outlier-multiplier 2 --ablate --out gemma-split
EOF
}

declare -A PLACE=() ADDR=()
LAUNCH='ssh -o BatchMode=yes {host}' PORT=5600 KEYS="" OUT=split-out
BASE="" FT="" SAE="" DATA=() TOKENS=256000 CTX="" BOS="" HOOK="" ROWS=8 MAXNORM="" MULT="" NSCALAR="" EST=4096
ABLATE="" THREADS=1 TITLE="" REPORT=1
kv_into() { # ARRAY LIST: ROLE=HOST,... into the associative array
  local -n into=$1; local item
  IFS=, read -r -a items <<<"$2"
  for item in "${items[@]}"; do
    [[ "$item" == *=* ]] || sf_usage_error "'$item' is not NAME=VALUE"
    into[${item%%=*}]=${item#*=}
  done
}
while [ $# -gt 0 ]; do
  case "$1" in
    --place) kv_into PLACE "${2:?}"; shift 2 ;;
    --addr) kv_into ADDR "${2:?}"; shift 2 ;;
    --launch) LAUNCH=${2:?}; shift 2 ;;
    --port-base) PORT=${2:?}; shift 2 ;;
    --keys) KEYS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --sae) SAE=${2:?}; shift 2 ;;
    --hook) HOOK=${2:?}; shift 2 ;;
    --outlier-norm-scalar) NSCALAR=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) sf_study_flag "$@"; [ "$SF_SHIFT" -gt 0 ] || sf_usage_error "unknown option '$1'"; shift "$SF_SHIFT" ;;
  esac
done
for r in "${!PLACE[@]}"; do
  case $r in tokenize|forward|encode|loss|reduce) ;; *) sf_usage_error "--place: unknown role '$r' (tokenize, forward, encode, loss, reduce)" ;; esac
done
[ -n "$BASE" ] && [ -n "$FT" ] && [ -n "$SAE" ] && [ ${#DATA[@]} -gt 0 ] || sf_usage_error "--base, --finetune, --sae and --data are required"
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65525 ] || sf_usage_error "--port-base $PORT: not a port in 1024..65525"
[ -z "$MAXNORM" ] || [ -z "$MULT" ] || sf_usage_error "--outlier-max-norm and --outlier-multiplier exclude each other"
# absolute paths: the stages run elsewhere (the same paths must hold there)
BASE=$(cd "$BASE" && pwd) FT=$(cd "$FT" && pwd) SAE=$(cd "$SAE" && pwd)
for i in "${!DATA[@]}"; do DATA[$i]=$(realpath -- "${DATA[$i]}"); done
[ -z "$KEYS" ] || KEYS=$(cd "$KEYS" && pwd)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
CFG=$SAE/cfg.json
[ -n "$HOOK" ] || HOOK=$(sf_cfg_get "$CFG" hook_name)
[ -n "$CTX" ] || CTX=$(sf_cfg_get "$CFG" context_size)
[ -n "$BOS" ] || BOS=$(sf_cfg_get "$CFG" prepend_bos)
[ -n "$CTX" ] && [ "$CTX" != null ] || CTX=128
[ "$BOS" = false ] && BOSFLAG=--no-bos || BOSFLAG=--bos
[ -n "$TITLE" ] || TITLE=$(basename "$FT")
VOCAB=$(sf_cfg_get "$BASE/config.json" vocab_size)

sf_lock "$OUT"
rm -f "$OUT/result.json" "$OUT/report.html"
sf_setup split.sh
T=$SF_TMP

# the outlier rule: a relative one without its scalar is estimated here first, as transfer.sh does
OUTL=()
if [ -n "$MAXNORM" ]; then OUTL=(--max-norm "$MAXNORM")
elif [ -n "$MULT" ]; then
  if [ -z "$NSCALAR" ]; then
    "$HERE/transfer.sh" --plan "$T/plan" --base "$BASE" --finetune "$FT" --sae "$SAE" --data "${DATA[@]}" \
        --tokens "$TOKENS" --ctx "$CTX" "$BOSFLAG" --hook "$HOOK" --rows "$ROWS" --outlier-multiplier "$MULT" \
        --outlier-estimate "$EST" 2> "$T/plan.err" || { cat "$T/plan.err" >&2; exit 1; }
    NSCALAR=$(sf_json_get "$T/plan/study.json" settings.outlier_norm_scalar)
  fi
  OUTL=(--norm-scalar "$NSCALAR" --multiplier "$MULT")
fi

host() { echo "${PLACE[$1]:-local}"; }
addr() { local h; h=$(host "$1"); [ "$h" = local ] && echo 127.0.0.1 || echo "${ADDR[$h]:-$h}"; }
NET=(); [ -n "$KEYS" ] && NET=(--keys "$KEYS") || NET=(--insecure)
bind() { echo "tcp://@$(addr "$1"):$(($PORT + $2))"; }   # ROLE N: the endpoint role's writer binds
conn() { echo "tcp://$(addr "$1"):$(($PORT + $2))"; }    # ... and its reader connects to
# run NAME ROLE CMD...: CMD (a shell line, quoted here) on ROLE's host, from this repository
run() {
  local name=$1 h; h=$(host "$2"); shift 2
  local line; line="cd $(printf '%q' "$ROOT") && PATH=$(printf '%q' "${SF_BIN:-$ROOT/build/bin}"):\$PATH && $*"
  if [ "$h" = local ]; then sf_stage "$name" bash -c "$line"
  else sf_stage "$name@$h" ${LAUNCH//\{host\}/$h} bash -c "$line"; fi
}
q() { printf '%q ' "$@"; }

# ports: 0,1 tokens to each forward; 2,3 acts; 4,5 encoded to reduce; 6,7 encoded to loss; 8,9 loss
run sf-tokenize tokenize "$(q sf-tokenize --tokenizer "$BASE" --ctx "$CTX" "$BOSFLAG" --rows "$ROWS" --max-tokens "$TOKENS" \
    -q "${NET[@]}" -o "$(bind tokenize 0)" -o "$(bind tokenize 1)" "${DATA[@]}")"
i=0
for X in base finetune; do
  [ $X = base ] && M=$BASE || M=$FT
  LIMIT=(); [ $X = finetune ] && [ -n "$VOCAB" ] && LIMIT=(--vocab-limit "$VOCAB")
  run "sf-forward ($X)" forward "$(q sf-forward --model "$M" --hook "$HOOK" "${LIMIT[@]}" --threads "$THREADS" -q "${NET[@]}" \
      -i "$(conn tokenize $i)" -o "$(bind forward $((2 + i)))")"
  ENC="$(q sf-encode --sae "$SAE" --splice --threads "$THREADS" -q "${NET[@]}" -o "$(bind encode $((4 + i)))" -o "$(bind encode $((6 + i)))")"
  if [ ${#OUTL[@]} -gt 0 ]; then
    run "sf-outliers | sf-encode ($X)" encode "$(q sf-outliers "${OUTL[@]}" -q "${NET[@]}" -i "$(conn forward $((2 + i)))") | $ENC"
  else
    run "sf-encode ($X)" encode "$ENC -i $(q "$(conn forward $((2 + i)))")"
  fi
  run "sf-forward --loss ($X)" loss "$(q sf-forward --model "$M" --from "$HOOK" --loss $ABLATE --threads "$THREADS" -q "${NET[@]}" \
      -i "$(conn encode $((6 + i)))" -o "$(bind loss $((8 + i)))")"
  i=1
done
run sf-reduce reduce "$(q sf-reduce "${NET[@]}" --base "$(conn encode 4)" --finetune "$(conn encode 5)" --base "$(conn loss 8)" \
    --finetune "$(conn loss 9)" --base-model "$BASE" --finetune-model "$FT" --sae "$SAE" -q -o "$OUT/result.json")"
sf_wait_all || exit $?
if [ -n "$REPORT" ]; then
  sf-report --title "$TITLE" -o "$OUT/report.html" "$OUT/result.json" || { echo "split.sh: error: stage sf-report failed" >&2; exit 1; }
fi
echo "split.sh: wrote $OUT/result.json${REPORT:+ and $OUT/report.html}" >&2

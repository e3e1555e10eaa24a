#!/usr/bin/env bash
# bench-forward.sh - sf-forward on synthetic Llama checkpoints written by sf-mkmodel (random
# weights; speed does not depend on them):
#  - GEMM-bound shape: d_model 2048, 16 heads x 128, d_ff 5632, 4 layers, 2 frames of 8 rows x 512
#    tokens, --hook blocks.3.hook_resid_post: tokens/s and achieved GFLOP/s (useful flops: linear
#    layers + causal attention, counted by sf-forward -v over its compute time, model loading
#    excluded) ÷ the sgemm peak; f32 weights (used in place from the mapping), bf16 weights
#    converted once (default cache) and bf16 converted per layer and frame (--cache-mb 0).
#  - loss mode: --from --loss --ablate on a d_model 2048, vocab 32000 bf16 model (written with
#    numpy by tests/sfstream.py), where the unembedding and the log-softmax dominate.
#  - memory: peak RSS of --hook blocks.1.hook_resid_post (one frame of 2 x 512 tokens) on a
#    12-layer bf16 model (d_model 1024, d_ff 2816) vs the model's full f32 size.
#  - PyTorch: only when python3-torch is installed (it is not by default: the row says so).
# ~2.5 minutes on 2 cores, most of it the two forward runs of the big shape and writing models.
# SF_BENCH_FORWARD_FRAMES overrides the frame count (default 2).
set -u
cd "$(dirname "$0")/.."
SF_BUILD=${SF_BUILD:-build}
export PATH="$PWD/$SF_BUILD/bin:$PATH"
B=$SF_BUILD/bench
peak=${SF_PEAK_ALL:-}
[ -n "$peak" ] || peak=$("$B/sgemm-peak" | sed 's/.*peak_gflops_all=\([0-9.]*\).*/\1/')
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "| sf-forward | $1 | FAILED | | $2 |"; }
NF=${SF_BENCH_FORWARD_FRAMES:-2}

# tokens: NF frames of R x C ids below VOCAB (a fixed LCG, no Python needed)
tokens() { # R C NF VOCAB OUT
  awk -v R=$1 -v C=$2 -v NF=$3 -v V=$4 'BEGIN {
    s = 12345; print "{\"sf\":1,\"kind\":\"header\",\"meta\":{}}"
    for (f = 0; f < NF; f++) {
      line = "{\"sf\":1,\"kind\":\"tokens\",\"seq\":" f ",\"tokens\":{\"dtype\":\"i32\",\"shape\":[" R "," C "],\"data\":["
      for (i = 0; i < R * C; i++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (i ? "," : "") (i % C ? 4 + s % (V - 4) : 2) }
      print line "]}}"
    }
    print "{\"sf\":1,\"kind\":\"end\",\"frames\":" NF ",\"rows\":" R * NF "}" }' | sf-cat --pack -o "$5"
}
vocab() { sed -n 's/.*"vocab_size":[[:space:]]*\([0-9]*\).*/\1/p' "$1/config.json"; }

# --- GEMM-bound forward ---------------------------------------------------------------------
BIG=(--d-model 2048 --layers 4 --heads 16 --kv-heads 16 --d-ff 5632 --atoms 0 -q)
sf-mkmodel -o "$tmp/f32" "${BIG[@]}" --dtype f32 || { fail "sf-mkmodel f32" ""; exit 0; }
tokens 8 512 "$NF" "$(vocab "$tmp/f32")" "$tmp/tok.sf"
# the machine is shared: each ratio uses the larger of bench/run's peak and one measured right
# before the row (a peak measured under someone else's load understates the machine)
peak_now() { local a; a=$("$B/sgemm-peak" | sed 's/.*peak_gflops_all=\([0-9.]*\).*/\1/'); awk -v a="$a" -v p="$peak" 'BEGIN{print (a > p ? a : p)}'; }
ratio() { awk -v g="$1" -v p="$2" 'BEGIN{printf "%.0f%% of sgemm peak %s", 100*g/p, p}'; }
run() { # label model extra-args...
  local label=$1 m=$2 out pk; shift 2
  pk=$(peak_now)
  out=$(sf-forward -v --model "$m" --hook blocks.3.hook_resid_post "$@" -i "$tmp/tok.sf" -o /dev/null 2>&1) || { fail "$label" "$(tail -1 <<<"$out")"; return; }
  local line tps g
  line=$(grep 'tokens/s' <<<"$out" | tail -1)
  tps=$(sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p' <<<"$line"); g=$(sed -n 's/.*, \([0-9.]*\) GFLOP\/s.*/\1/p' <<<"$line")
  echo "| sf-forward | $label | $tps | tokens/s | $g GFLOP/s = $(ratio "$g" "$pk") |"
}
run "d2048 4 layers, 8x512 tok/frame, f32 weights in place" "$tmp/f32"
rm -rf "$tmp/f32"
sf-mkmodel -o "$tmp/bf16" "${BIG[@]}" --dtype bf16 || { fail "sf-mkmodel bf16" ""; exit 0; }
run "same, bf16 weights (converted once)" "$tmp/bf16"
run "same, bf16 converted per layer and frame (--cache-mb 0)" "$tmp/bf16" --cache-mb 0
rm -rf "$tmp/bf16"

# --- loss mode: final norm + unembedding dominate (vocab 32000, one small block) ---------------
PYN=${PY:-/usr/bin/python3}
if "$PYN" -c 'import numpy' 2>/dev/null; then
  "$PYN" -c "import sys; sys.path.insert(0, 'tests'); import sfstream; sfstream.write_tiny('$tmp/v32k', 'llama', dtype='BF16', hidden_size=2048, num_attention_heads=16, num_key_value_heads=16, head_dim=128, intermediate_size=256, num_hidden_layers=1, vocab_size=32000)" &&
  tokens 8 512 1 32000 "$tmp/tokv.sf" &&
  sf-forward --model "$tmp/v32k" --hook blocks.0.hook_resid_post -q -i "$tmp/tokv.sf" -o "$tmp/actsv.sf" || fail "loss setup" ""
  pk=$(peak_now)
  out=$(sf-forward -v --model "$tmp/v32k" --from blocks.0.hook_resid_post --loss --ablate -i "$tmp/actsv.sf" -o /dev/null 2>&1) || fail "loss" "$(tail -1 <<<"$out")"
  line=$(grep 'tokens/s' <<<"$out" | tail -1)
  tps=$(sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p' <<<"$line"); g=$(sed -n 's/.*, \([0-9.]*\) GFLOP\/s.*/\1/p' <<<"$line")
  echo "| sf-forward | --from --loss --ablate (clean + ablated), d2048 vocab 32000 bf16, 8x512 tok | $tps | tokens/s | $g GFLOP/s = $(ratio "$g" "$pk") (unembedding + online log-softmax/KL in double) |"
  rm -rf "$tmp/v32k"
else
  echo "| sf-forward | loss mode | n/a | | python3 with numpy not found (writes the vocab-32000 model) |"
fi

# --- memory: 12-layer bf16 model, hook at block 1 --------------------------------------------
sf-mkmodel -o "$tmp/m12" --d-model 1024 --layers 12 --heads 8 --kv-heads 8 --d-ff 2816 --atoms 0 --dtype bf16 -q || { fail "sf-mkmodel 12 layers" ""; exit 0; }
tokens 2 512 1 "$(vocab "$tmp/m12")" "$tmp/tok12.sf"
f32_mb=$(awk -v b="$(stat -c %s "$tmp/m12/model.safetensors")" 'BEGIN{printf "%.0f", b*2/1048576}')
for cache in default 0; do
  args=(); [ $cache = 0 ] && args=(--cache-mb 0)
  rss=$( { /usr/bin/time -f 'maxrss=%M' sf-forward --model "$tmp/m12" --hook blocks.1.hook_resid_post "${args[@]}" -q -i "$tmp/tok12.sf" -o /dev/null; } 2>&1 | sed -n 's/.*maxrss=\([0-9]*\).*/\1/p')
  [ -n "$rss" ] || { fail "peak RSS, cache $cache" "no /usr/bin/time?"; continue; }
  echo "| sf-forward | peak RSS, --hook blocks.1.hook_resid_post, 12-layer bf16 d1024 model, 2x512 tokens$([ $cache = 0 ] && echo ', --cache-mb 0') | $((rss / 1024)) | MiB | $(awk -v r=$rss -v f=$f32_mb 'BEGIN{printf "%.2f", r/1024/f}') x the model's full f32 size ($f32_mb MiB) |"
done

# --- PyTorch ---------------------------------------------------------------------------------
if python3 -c 'import torch' 2>/dev/null; then
  echo "| sf-forward | PyTorch comparison | | | python3-torch is installed but this bench has no torch row yet |"
else
  echo "| sf-forward | PyTorch comparison | n/a | | python3-torch is not installed (Debian python3-torch): no comparison |"
fi

#!/usr/bin/env bash
# bench-encode.sh - sf-encode's kernels (build/bench/encode-bench, no I/O) on synthetic SAEs:
# encoder sgemm GFLOP/s ÷ the machine's sgemm peak (target >= 60%) and tokens/s of the whole
# per-frame work (normalise, sgemm, relu/topk + CSR, sparse decode with --splice).
# Shapes: Mistral-7B-like d_in 4096, d_sae 65536, 4096 tokens per frame (relu, L0 ≈ 64), and a
# Gemma-2b-like d_in 2048, d_sae 16384 with topk k 64. Takes ~1 min on 2 cores. On a shared
# machine the peak of bench/run (SF_PEAK_ALL) may be measured under another load than the row:
# encode-bench also measures a square-4096 sgemm peak right before and after its run (at 2048
# two threads scale poorly: the 2048 peak understates what OpenBLAS reaches on big products).
# SF_BENCH_ENCODE_TOKENS overrides the token count of the big shape.
set -u
cd "$(dirname "$0")/.."
B=${SF_BUILD:-build}/bench
peak=${SF_PEAK_ALL:-}
[ -n "$peak" ] || peak=$("$B/sgemm-peak" | sed 's/.*peak_gflops_all=\([0-9.]*\).*/\1/')
row() { # d_in d_sae tokens act k label
  local out; out=$("$B/encode-bench" "$1" "$2" "$3" "$4" "$5" 1) || { echo "| sf-encode | $6 | FAILED | | |"; return; }
  local v; v() { sed -n "s/.*\b$1=\([0-9.e+-]*\).*/\1/p" <<<"$out" | head -1; }
  local g tps l0 post tot
  g=$(v sgemm_gflops); tps=$(v tokens_per_s); l0=$(v l0); post=$(v post_seconds); tot=$(v total_seconds)
  adj=$(v adjacent_peak_gflops)
  echo "| sf-encode | encoder sgemm, $6 | $g | GFLOP/s | $(awk -v g="$g" -v p="$peak" -v a="$adj" 'BEGIN{printf "%.0f%% of sgemm peak %s; %.0f%% of the 4096-square peak measured next to it (%s)", 100*g/p, p, 100*g/a, a}') |"
  echo "| sf-encode | whole frame (encode + $4 + CSR + sparse decode), $6 | $tps | tokens/s | L0 $l0; activation + decode $(awk -v a="$post" -v t="$tot" 'BEGIN{printf "%.1f%%", 100*a/t}') of the time |"
}
row 4096 65536 "${SF_BENCH_ENCODE_TOKENS:-4096}" relu 64 "d_in 4096 d_sae 65536, ${SF_BENCH_ENCODE_TOKENS:-4096} tok/frame"
row 2048 16384 4096 topk 64 "d_in 2048 d_sae 16384 topk 64, 4096 tok/frame"

#!/usr/bin/env bash
# bench-reduce.sh - sf-reduce throughput and memory on synthetic Gemma-2b-shaped frames
# (build/bench/reduce-gen: d_model 2048, d_sae 16384, L0 60, frames of 8 x 128 tokens):
# tokens/s for acts+feats, acts+recon+feats, and the two-stream transfer study, read from a
# file (best of 3); the ratio to a Gemma-2b forward pass at the machine's sgemm peak (an upper
# bound on forward speed: ~110e6 params per Gemma-2b layer, 6 layers to blocks.6.hook_resid_pre,
# 2 FLOP per param = 1.32 GFLOP/token, attention scores and norms ignored; the issue asks
# >= 20x); peak RSS for two stream lengths
# (memory independent of length). SF_BENCH_REDUCE_TOKENS (default 8192) sets the file size.
# Drill-down (issue 16): the two-stream study at d_sae 65,536 (d_model 256, L0 60) with --top-k 0
# (off) and the default --top-k 8 --context 8: tokens/s of each and the extra peak RSS, next to the
# bound sf-reduce states (d_sae x (8 + K x (17 + 8 x (2W + 1))) bytes per model).
set -u
cd "$(dirname "$0")/.."
B=${SF_BUILD:-build}
G=$B/bench/reduce-gen R=$B/bin/sf-reduce
N=${SF_BENCH_REDUCE_TOKENS:-8192}
peak=${SF_PEAK_ALL:-}
[ -n "$peak" ] || peak=$("$B/bench/sgemm-peak" | sed 's/.*peak_gflops_all=\([0-9.]*\).*/\1/')
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fwd=$(awk -v p="$peak" 'BEGIN{printf "%.1f", p * 1e9 / 1.32e9}')
best() { # best of 3 wall seconds of: sf-reduce ARGS
  local b=999 s e t
  for _ in 1 2 3; do
    s=$(date +%s.%N); "$R" "$@" --no-partial -o /dev/null || { echo FAILED; return; }; e=$(date +%s.%N)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'); b=$(awk -v a="$b" -v t="$t" 'BEGIN{print (t<a)?t:a}')
  done
  echo "$b"
}
row() { # label seconds tokens
  local tps; tps=$(awk -v n="$3" -v t="$2" 'BEGIN{printf "%.0f", n/t}')
  echo "| sf-reduce | $1 | $tps | tokens/s | $(awk -v a="$tps" -v f="$fwd" 'BEGIN{printf "%.0fx a Gemma-2b forward to blocks.6 at sgemm peak (%s tok/s)", a/f, f}') |"
}
"$G" "$tmp/a.sf" "$N" 2048 16384 60 128 8 0 1 && "$G" "$tmp/b.sf" "$N" 2048 16384 60 128 8 0 2 && "$G" "$tmp/r.sf" "$N" 2048 16384 60 128 8 1 1 || { echo "| sf-reduce | generator | FAILED | | |"; exit 0; }
row "acts+feats, d_model 2048 d_sae 16384 L0 60, $N tok from a file" "$(best -i "$tmp/a.sf")" "$N"
row "acts+recon+feats (r2, EV, mse, cos, l2_ratio), $N tok" "$(best -i "$tmp/r.sf")" "$N"
row "two streams (base+finetune, transfer + similarity), $N tok pairs" "$(best --base "$tmp/a.sf" --finetune "$tmp/b.sf")" "$N"
for n in 4096 32768; do
  rss=$( { "$G" - "$n" 2048 16384 60 128 8 1 1 | /usr/bin/time -f "%M" "$R" --no-partial -o /dev/null; } 2>&1 | tail -1)
  echo "| sf-reduce | peak RSS, acts+recon+feats piped, $n tokens | $(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}') | MiB | one frame (8 x 128 x 2048 f32 acts + recon = 16 MiB) + O(d_sae) sums |"
done
"$R" -i "$tmp/a.sf" -o "$tmp/p.json" && s=$(date +%s.%N) && "$R" --merge "$tmp/p.json" "$tmp/p.json" "$tmp/p.json" -o /dev/null && e=$(date +%s.%N) &&
  echo "| sf-reduce | --merge of 3 partial results (d_sae 16384) | $(awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e-s}') | s | JSON $(du -k "$tmp/p.json" | cut -f1) KiB each |"
# ---- drill-down cost (issue 16): top-k contexts on/off at d_sae 65,536 ----
DS=65536 DM=256 K=8 W=8
if "$G" "$tmp/db.sf" "$N" $DM $DS 60 128 8 0 1 && "$G" "$tmp/df.sf" "$N" $DM $DS 60 128 8 0 2; then
  t0=$(best --base "$tmp/db.sf" --finetune "$tmp/df.sf" --top-k 0)
  t1=$(best --base "$tmp/db.sf" --finetune "$tmp/df.sf" --top-k $K --context $W)
  row "two streams, d_sae $DS, drill-down off (--top-k 0), $N tok pairs" "$t0" "$N"
  row "two streams, d_sae $DS, drill-down --top-k $K --context $W, $N tok pairs" "$t1" "$N"
  m0=$( { /usr/bin/time -f "%M" "$R" --base "$tmp/db.sf" --finetune "$tmp/df.sf" --top-k 0 --no-partial -o /dev/null; } 2>&1 | tail -1)
  m1=$( { /usr/bin/time -f "%M" "$R" --base "$tmp/db.sf" --finetune "$tmp/df.sf" --top-k $K --context $W --no-partial -o /dev/null; } 2>&1 | tail -1)
  bound=$(awk -v d=$DS -v k=$K -v w=$W 'BEGIN{printf "%.1f", 2 * d * (8 + k * (17 + 8 * (2 * w + 1))) / 1048576}')
  echo "| sf-reduce | drill-down extra peak RSS, d_sae $DS, K $K, W $W, two models | $(awk -v a="$m0" -v b="$m1" 'BEGIN{printf "%.1f", (b-a)/1024}') | MiB | bound 2 x d_sae x (8 + K x (17 + 8 x (2W + 1))) B = $bound MiB (off: $(awk -v a="$m0" 'BEGIN{printf "%.1f", a/1024}') MiB), fixed whatever the tokens; refused over 2048 MiB per model |"
else
  echo "| sf-reduce | drill-down generator | FAILED | | |"
fi

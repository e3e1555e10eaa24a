#!/usr/bin/env bash
# Output bytes do not depend on --threads (issue 12): on the stories260k fixture, sf-forward
# --hook, sf-forward --from --loss --ablate (with the relu SAE's recon; without and with a keep
# mask that has outliers in some rows), sf-encode (relu and topk
# SAEs, --splice) and sf-train (a few steps, relu and topk) give byte-identical outputs at
# --threads 1, 2 and 3. Frames are compared as sf-cat JSON lines without the header (it records
# the args) and the end frame's timings; sf-train's sae_weights.safetensors and sparsity byte
# for byte. OPENBLAS_NUM_THREADS is left to --threads here.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
unset OPENBLAS_NUM_THREADS
F=$SF_FIXTURES; M=$F/models/stories260k; H=blocks.2.hook_resid_post
sf-tokenize --tokenizer "$M/tokenizer.model" --ctx 64 --rows 6 --max-tokens 2304 -q \
  "$F/data/stories.jsonl" -o tok.sf || die "sf-tokenize"
frames() { sf-cat -i "$1" | grep -v -e '"kind":"header"' -e '"kind":"end"'; }
bad=()
same() { # same WHAT FILE_FOR_T1 FILE_FOR_T2 FILE_FOR_T3 (already JSON lines or raw files)
  [ -s "$2" ] || die "$1: --threads 1 wrote nothing"
  cmp -s "$2" "$3" || bad+=("$1 (1 vs 2 threads)")
  cmp -s "$2" "$4" || bad+=("$1 (1 vs 3 threads)")
}
# a keep mask with an outlier in a few rows only: the loss then runs the spliced-everywhere
# variant and packs the ablated rows that have an outlier (the others are all zeros, not run)
sf-forward -q --model "$M" --hook $H -i tok.sf | sf-outliers --estimate 512 --multiplier 1.8 -q |
  sf-encode -q --sae "$F/saes/stories260k-L2-relu" --splice -o enc-keep.sf || die "outliers + encode"
mixed=$(sf-cat -i enc-keep.sf | "$PY" -c '
import json, sys
w = n = 0
for l in sys.stdin:
    d = json.loads(l)
    if d["kind"] != "acts": continue
    R, C = d["keep"]["shape"]; k = d["keep"]["data"]
    for r in range(R): n += 1; w += 0 in k[r * C:(r + 1) * C]
print(w, n)')
read -r wrows nrows <<<"$mixed"
[ "${wrows:-0}" -gt 0 ] && [ "$wrows" -lt "$nrows" ] || die "keep mask: $wrows of $nrows rows with an outlier (want some, not all)"
for t in 1 2 3; do
  sf-forward -q --threads $t --model "$M" --hook $H -i tok.sf -o acts$t.sf || die "sf-forward --hook --threads $t"
  frames acts$t.sf > acts$t.jsonl
  for s in relu topk; do
    sf-encode -q --threads $t --sae "$F/saes/stories260k-L2-$s" --splice -i acts1.sf -o enc-$s$t.sf ||
      die "sf-encode $s --threads $t"
    frames enc-$s$t.sf > enc-$s$t.jsonl
  done
  sf-forward -q --threads $t --model "$M" --from $H --loss --ablate -i enc-relu1.sf -o loss$t.sf ||
    die "sf-forward --loss --threads $t"
  frames loss$t.sf > loss$t.jsonl
  sf-forward -q --threads $t --model "$M" --from $H --loss --ablate -i enc-keep.sf -o lossk$t.sf ||
    die "sf-forward --loss (keep) --threads $t"
  frames lossk$t.sf > lossk$t.jsonl
  sf-train -q --threads $t --d-sae 256 --batch 512 --steps 6 --l1-warmup 2 -i acts1.sf -o sae-relu$t ||
    die "sf-train relu --threads $t"
  sf-train -q --threads $t --d-sae 256 --k 8 --batch 512 --steps 6 -i acts1.sf -o sae-topk$t ||
    die "sf-train topk --threads $t"
done
same "sf-forward --hook" acts{1,2,3}.jsonl
same "sf-encode relu --splice" enc-relu{1,2,3}.jsonl
same "sf-encode topk --splice" enc-topk{1,2,3}.jsonl
same "sf-forward --from --loss --ablate" loss{1,2,3}.jsonl
same "sf-forward --from --loss --ablate, outliers in $wrows of $nrows rows" lossk{1,2,3}.jsonl
for s in relu topk; do
  for f in sae_weights sparsity; do same "sf-train $s $f" sae-${s}{1,2,3}/$f.safetensors; done
done
[ ${#bad[@]} = 0 ] || die "differ with --threads: $(IFS=';'; echo "${bad[*]}")"
echo "sf-forward, sf-encode, sf-train: identical bytes at --threads 1, 2, 3"

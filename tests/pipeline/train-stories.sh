#!/usr/bin/env bash
# sf-train on real stories260k base activations (blocks.2.hook_resid_post): a ReLU SAE with
# d_sae 512 reaches explained variance >= 0.8 at L0 <= 30 (fixed seed, small budget). EV and L0
# are recomputed in numpy from the written weights; cfg.json has SAELens' key set.
source "$SF_ROOT/tests/lib.sh"
need_fixtures; need_py numpy
F=$SF_FIXTURES
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 128 --rows 32 --max-tokens 65536 -q "$F/data/stories.jsonl" |
  sf-forward --model "$F/models/stories260k" --hook blocks.2.hook_resid_post -o acts.sf || die "tokenize | forward failed"
sf-train -i acts.sf -o sae --d-sae 512 --l1 1.2 --l1-warmup 50 --batch 1024 --steps 400 --lr 3e-3 \
  --dec-init-norm 0.5 --seed 1 || die "sf-train failed"
for f in cfg.json sae_weights.safetensors sparsity.safetensors; do [ -s sae/$f ] || die "sae/$f missing"; done
"$PY" -c 'import json, sys; a, b = (list(json.load(open(d + "/cfg.json"))) for d in sys.argv[1:]); a == b or sys.exit(f"{a} vs {b}")' \
    sae "$F/saes/stories260k-L2-relu" || die "cfg.json keys differ from SAELens'"
grep -q '"hook_name":[[:space:]]*"blocks.2.hook_resid_post"' sae/cfg.json || die "hook_name"
grep -q '"context_size":[[:space:]]*128' sae/cfg.json || die "context_size"
grep -q '"prepend_bos":[[:space:]]*true' sae/cfg.json || die "prepend_bos"
read -r ev l0 mse n < <(sf-cat -i acts.sf --head 4 | "$PY" "$SF_ROOT/tests/sfstream.py" sae-eval sae 16384)
echo "numpy on $n training tokens: explained variance $ev, L0 $l0, mse $mse"
awk -v ev="$ev" -v l0="$l0" 'BEGIN { exit !(ev >= 0.8 && l0 <= 30 && l0 > 0) }' || die "EV $ev / L0 $l0 outside EV >= 0.8, L0 <= 30"

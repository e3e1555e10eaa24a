#!/usr/bin/env bash
# sf-train --init-from: the fixture ReLU SAE (trained on stories260k base) finetuned on
# stories260k-ft-code activations explains ft-code's activations better than the untouched SAE
# does, on held-out rows (numpy evaluation from the written weights). The architecture and
# cfg come from the SAE it starts from.
source "$SF_ROOT/tests/lib.sh"
need_fixtures; need_py numpy
F=$SF_FIXTURES; SAE=$F/saes/stories260k-L2-relu; FT=$F/models/stories260k-ft-code
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 128 --rows 32 --max-tokens 40960 -q "$F/data/stories.jsonl" |
  sf-forward --model "$FT" --hook blocks.2.hook_resid_post -o train.sf || die "train acts"
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 128 --rows 32 --skip-rows 320 --max-tokens 8192 -q "$F/data/stories.jsonl" |
  sf-forward --model "$FT" --hook blocks.2.hook_resid_post -o held.sf || die "held-out acts"
sf-train -i train.sf --init-from "$SAE" -o sae-ft --l1 0.6 --l1-warmup 0 --batch 1024 --steps 150 --lr 1e-3 --seed 2 || die "sf-train failed"
grep -q '"activation_fn_str":[[:space:]]*"relu"' sae-ft/cfg.json || die "architecture not kept"
read -r ev0 l00 _ n < <(sf-cat -i held.sf | "$PY" "$SF_ROOT/tests/sfstream.py" sae-eval "$SAE")
read -r ev1 l01 _ _ < <(sf-cat -i held.sf | "$PY" "$SF_ROOT/tests/sfstream.py" sae-eval sae-ft)
echo "ft-code held-out ($n tokens): untouched SAE EV $ev0 (L0 $l00), after --init-from EV $ev1 (L0 $l01)"
awk -v a="$ev0" -v b="$ev1" 'BEGIN { exit !(b > a + 0.02) }' || die "EV did not improve: $ev0 -> $ev1"

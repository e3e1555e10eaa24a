#!/usr/bin/env bash
# Dead / exclusively-dead / regular sets exactly at the -9 / -8 / -5 / -1 boundaries of
# log10(density + 1e-10). Reaching them takes billions of tokens, so the counts come as a
# hand-written "partial" (what sf-reduce writes for a shard) of N = 2e9 tokens fed to --merge;
# the expected sets are worked out by hand below (and re-derived with numpy).
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import json
import numpy as np
import sfstream as sf
N = 2_000_000_000
# (base count, finetune count) -> by hand, with d = count/N:
#  f0 (0, 0)                   both -10: dead in both, in no exclusive set
#  f1 (1, 20)                  base log10(5e-10 + 1e-10) = -9.22 <= -9: dead; ft log10(1.01e-8) = -7.996 > -8
#  f2 (2, 20)                  base log10(1.1e-9) = -8.96: not dead, but <= -8: dead only in base
#  f3 (19, 20)                 base log10(9.6e-9) = -8.018 <= -8: dead only in base
#  f4 (20, 19)                 dead only in finetune
#  f5 (20000, 199999999)       -4.99999 and log10(0.0999999996) < -1: regular
#  f6 (19999, 50000)           base log10(9.9996e-6) < -5: not regular
#  f7 (200000000, 50000)       base log10(0.1 + 1e-10) > -1: not regular
#  f8 (50000, 50000)           regular
cb = [0, 1, 2, 19, 20, 20000, 19999, 200000000, 50000]
cf = [0, 20, 20, 20, 19, 199999999, 50000, 50000, 50000]
S = len(cb)
def feats(c):
    c = np.array(c, np.float64)
    return {"d_sae": S, "tokens": N, "l0_count": float(c.sum()), "l1_sum": float(c.sum()), "nonfinite": 0, "positive": float(c.sum()),
            "fire": c.tolist(), "nonzero": c.tolist(), "sum": c.tolist(), "sum_sq": c.tolist(),
            "max": [1.0 if x else None for x in c], "min": [1.0 if x else None for x in c],
            "act_log10_hist": {"counts": [0] * 300, "below": 0, "above": 0, "nan": 0}}
part = {"version": 1, "paired": 1, "tokens": N, "rows": N // 1000, "ctx": 1000, "hook": "h", "sae": "s", "seconds": 1.0,
        "reduce_rows": N // 500, "reduce_tokens": 2 * N, "base": {"feats": feats(cb)}, "finetune": {"feats": feats(cf)},
        "transfer": {"tokens": N, "d_sae": S, "sum_ab": np.minimum(cb, cf).astype(float).tolist(), "sum_abs_logdiff": [0.0] * S}}
json.dump({"partial": part}, open("hand.json", "w"))
got = sf.run_json(["sf-reduce", "--merge", "hand.json"])
c = sf.Checker()
t = got["transfer"]
c.eq(t["activation_error_dead_base"]["features"], [1, 2, 3], "dead only in base (<= -8 vs > -8)")
c.eq(t["activation_error_dead_finetune"]["features"], [4], "dead only in finetune")
c.eq(t["activation_similarity"]["features"], [5, 8], "regular (-5 <= L <= -1 in both)")
c.eq((got["base"]["dead_count"], got["finetune"]["dead_count"]), (2, 1), "dead (<= -9) counts")
c.close(got["base"]["dead_fraction"], 2 / S, "dead_fraction")
Lb = np.log10(np.array(cb) / N + 1e-10)
c.close(got["base"]["log_density"], Lb, "log_density", rtol=1e-12)
# the same sets from numpy on the densities
c.eq(np.nonzero((Lb <= -8) & (np.log10(np.array(cf) / N + 1e-10) > -8))[0].tolist(), [1, 2, 3], "numpy agrees")
c.close(got["throughput"]["sf-reduce"]["tokens_per_s"], 2 * N, "throughput from the partial")
c.done()
EOF

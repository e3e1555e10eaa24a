#!/usr/bin/env bash
# sf-reduce --base A --finetune B (the transfer study) on 40 hand-designed tokens against numpy:
# exclusively dead sets (-8), regular set (-5..-1; a feature at density exactly 0.1 is out since
# log10(0.1 + 1e-10) > -1), activation error, per-feature Pearson with a constant (all-2.0) and an
# all-zero feature (NaN path: null + nan_counts), density Pearson, both per-model blocks, and the
# similarity block from the paired activations; --sample subsets the sets deterministically.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import numpy as np
import oracles
import sfstream as sf
rng = np.random.default_rng(5)
D, S, ROWS, CTX = 6, 12, 2, 10
N = 2 * ROWS * CTX                                   # 2 frames
Fb = np.zeros((N, S), np.float32); Ff = np.zeros((N, S), np.float32)
def fire(F, j, k, scale=1.0):
    idx = rng.choice(N, k, replace=False); F[idx, j] = rng.uniform(0.1, 3, k) * scale; return idx
i0 = fire(Fb, 0, 3); Ff[i0, 0] = Fb[i0, 0] * 0.9 + 0.05   # regular, correlated
fire(Fb, 1, 2); fire(Ff, 1, 3)                           # regular, unrelated
fire(Ff, 2, 5)                                           # dead only in base
fire(Fb, 3, 6)                                           # dead only in finetune
                                                         # 4: dead in both
Fb[:, 5] = 2.0; fire(Ff, 5, 30)                          # constant (nonzero) in base -> NaN
fire(Fb, 6, 4); fire(Ff, 6, 4)                           # density 0.1 exactly: not regular
fire(Fb, 7, 3); fire(Ff, 7, 1)                           # 0.075 / 0.025: regular
for j in range(8, S): fire(Fb, j, 20); fire(Ff, j, int(rng.integers(1, 30)))
Ab = rng.normal(0, 1, (N, D)).astype(np.float32)
Af = (Ab + rng.normal(0, 0.7, (N, D))).astype(np.float32); Af[7] = 0   # a zero vector: cos 0 (floored norm)
tok = rng.integers(0, 300, (2, ROWS, CTX))
def frames(A, F):
    return [sf.acts_frame(s, tok[s], A[s*20:(s+1)*20].reshape(ROWS, CTX, D), feats=F[s*20:(s+1)*20].reshape(ROWS, CTX, S),
                          hook="blocks.0.hook_resid_post") for s in range(2)]
sf.pack(sf.stream(frames(Ab, Fb), model="base"), "b.sf")
sf.pack(sf.stream(frames(Af, Ff), model="ft"), "f.sf")
got = sf.run_json(["sf-reduce", "--base", "b.sf", "--finetune", "f.sf"])
ref = oracles.transfer_ref(Fb, Ff)
c = sf.Checker()
t = got["transfer"]
c.eq([int(t["dead_only_base"]), int(t["dead_only_finetune"])], [1, 1], "exclusively dead counts")
c.eq(t["activation_error_dead_base"]["features"], ref["dead_only_base"].tolist(), "dead_only_base set")
c.eq(t["activation_error_dead_finetune"]["features"], ref["dead_only_finetune"].tolist(), "dead_only_finetune set")
c.eq(ref["regular"].tolist(), [0, 1, 7], "test design: regular = 0, 1, 7")
c.eq(t["activation_similarity"]["features"], ref["regular"].tolist(), "regular set")
c.eq(t["regular_count"], 3, "regular_count")
c.close(t["activation_error_dead_base"]["values"], ref["act_error"][ref["dead_only_base"]], "activation_error_dead_base")
c.close(t["activation_error_dead_finetune"]["values"], ref["act_error"][ref["dead_only_finetune"]], "activation_error_dead_finetune")
c.close(t["activation_error_dead_base"]["max_finetune_act"], ref["max_f"][ref["dead_only_base"]].max(), "max_finetune_act")
c.close(t["activation_error_dead_finetune"]["max_base_act"], ref["max_b"][ref["dead_only_finetune"]].max(), "max_base_act")
sim = ref["act_sim"]
c.close(t["activation_similarity"]["values"], sim[ref["regular"]], "activation_similarity", rtol=1e-9)
c.close(t["activation_similarity"]["mean"], sim[ref["regular"]].mean(), "activation_similarity.mean")
c.close(t["activation_similarity"]["frac_above_0.8"], (sim[ref["regular"]] > 0.8).mean(), "frac_above_0.8")
c.close(t["activation_similarity_all"]["values"], sim, "activation_similarity_all")
# NaN: 2, 3 all-zero in one model, 4 in both, 5 constant 2.0 in base
c.eq([j for j, v in enumerate(t["activation_similarity_all"]["values"]) if v is None], [2, 3, 4, 5], "constant vectors written as null")
c.eq(got["nan_counts"]["transfer.activation_similarity_all"]["count"], 4, "nan_counts for the constant vectors")
c.close(t["activation_similarity_all"]["mean"], np.nanmean(sim), "activation_similarity_all.mean excludes NaN")
c.close(t["density_pearson"], ref["density_pearson"], "density_pearson")
for name, F in (("base", Fb), ("finetune", Ff)):
    fr = oracles.feats_ref(F)
    for k in ("l0", "l1", "dead_fraction"): c.close(got[name][k], fr[k], f"{name}.{k}")
    c.close(got[name]["log_density"], fr["log_density"], f"{name}.log_density")
# similarity from the paired activations
cos, l2 = oracles.sim_ref(Ab.reshape(2 * ROWS, CTX, D), Af.reshape(2 * ROWS, CTX, D))
s = got["similarity"]
c.close(s["cos_mean"], cos.mean(), "cos_mean", rtol=1e-7); c.close(s["l2_mean"], l2.mean(), "l2_mean", rtol=1e-7)
c.close(s["cos_by_position"], cos.mean(0), "cos_by_position", rtol=1e-7); c.close(s["l2_by_row"], l2.mean(1), "l2_by_row", rtol=1e-7)
c.eq(s["cos_hist"]["counts"], oracles.hist_counts(cos.astype(np.float32), "cos").tolist(), "cos_hist")
c.eq(s["l2_hist"]["counts"], oracles.hist_counts(l2.astype(np.float32), "l2").tolist(), "l2_hist")
# --sample 2 --seed 3: two of the three regular features, the same two every time
a = sf.run_json(["sf-reduce", "--base", "b.sf", "--finetune", "f.sf", "--sample", "2", "--seed", "3", "--no-partial"])
b = sf.run_json(["sf-reduce", "--base", "b.sf", "--finetune", "f.sf", "--sample", "2", "--seed", "3", "--no-partial"])
fa = a["transfer"]["activation_similarity"]["features"]
c.eq(len(fa), 2, "--sample 2"); c.eq(set(fa) <= {0, 1, 7}, True, "sample within the regular set")
c.eq(fa, b["transfer"]["activation_similarity"]["features"], "sample is deterministic")
c.eq(a["transfer"]["regular_count"], 3, "regular_count counts the whole set")
c.done()
EOF

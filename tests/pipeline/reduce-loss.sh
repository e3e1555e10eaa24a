#!/usr/bin/env bash
# sf-reduce on loss frames: CE clean/spliced/ablated means, ce_delta, ce_recovered (SAELens
# (ablated - spliced)/(ablated - clean)), KL(clean || patched) means with per-token KL computed
# in numpy from random logits, and non-finite per-token values left out and counted in
# nan_counts (not silently dropped).
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import numpy as np
import oracles
import sfstream as sf
rng = np.random.default_rng(2)
R, C, V = 3, 9, 20
def logsm(z): z = z - z.max(-1, keepdims=True); return z - np.log(np.exp(z).sum(-1, keepdims=True))
tok = rng.integers(0, V, (2, R, C))
vals = {k: [] for k in ("ce_clean", "ce_spliced", "ce_ablated", "kl_spliced", "kl_ablated")}
frames = []
for s in range(2):
    clean = rng.normal(0, 2, (R, C, V)); spl = clean + rng.normal(0, 0.5, (R, C, V)); abl = rng.normal(0, 2, (R, C, V))
    nxt = tok[s][:, 1:]
    f = {"sf": 1, "kind": "loss", "seq": s, "tokens": sf.tensor(tok[s], "i32")}
    for k, z in (("ce_clean", clean), ("ce_spliced", spl), ("ce_ablated", abl)):
        v = -np.take_along_axis(logsm(z)[:, :-1], nxt[..., None], -1)[..., 0]
        vals[k].append(v.astype(np.float32))
    lp = logsm(clean)[:, :-1]
    for k, z in (("kl_spliced", spl), ("kl_ablated", abl)):
        v = (np.exp(lp) * (lp - logsm(z)[:, :-1])).sum(-1).astype(np.float32)
        vals[k].append(v)
    if s == 1:
        vals["kl_ablated"][-1][0, 2] = np.inf; vals["kl_ablated"][-1][2, 5] = np.nan
    for k in vals: f[k] = sf.tensor(vals[k][-1], "f32")
    frames.append(f)
sf.pack(sf.stream(frames), "loss.sf")
got = sf.run_json(["sf-reduce", "-i", "loss.sf"])
m = got["model"]
mean = {k: float(np.nanmean(np.where(np.isfinite(oracles.f64(np.concatenate(v))), oracles.f64(np.concatenate(v)), np.nan))) for k, v in vals.items()}
c = sf.Checker()
for k in vals: c.close(m[k], mean[k], k)
c.close(m["ce_delta"], mean["ce_spliced"] - mean["ce_clean"], "ce_delta")
c.close(m["ce_recovered"], (mean["ce_ablated"] - mean["ce_spliced"]) / (mean["ce_ablated"] - mean["ce_clean"]), "ce_recovered")
c.eq(got["nan_counts"]["model.kl_ablated"]["count"], 2, "non-finite KL values counted")
c.eq(len(got["nan_counts"]), 1, "nothing else excluded")
c.eq((got["tokens"], got["rows"], got["ctx"]), (2 * R * C, 2 * R, C), "tokens/rows/ctx of loss frames")
c.eq(m["kl_spliced"] > 0 and m["kl_ablated"] > m["kl_spliced"], True, "KL sanity (spliced is closer)")
c.done()
EOF

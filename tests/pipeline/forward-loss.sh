#!/usr/bin/env bash
# sf-forward --from H --loss with recon / keep / --ablate / --vocab-limit, checked against the
# stories260k reference (spliced CE with the relu SAE's reconstruction) and against an
# independent float64 numpy forward (tests/oracles.py NpModel, itself checked against the
# reference CE here) for KL(clean || spliced), ablated CE and KL, a partial keep mask, and a
# vocabulary cut, on stories260k (Llama, tied), tiny-mistral (untied, window) and tiny-gemma.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
"$PY" - <<'PYEOF' || exit 1
import sys
import numpy as np
import oracles
import sfstream as sf
fx = sf.FX
fails = []
def close(what, got, want, tol_rel=2e-5, tol_abs=1e-4):
    want = np.asarray(want, np.float64)
    ea = float(np.abs(got - want).max()); er = ea / max(float(np.abs(want).max()), 1e-30)
    ok = got.shape == want.shape and (er <= tol_rel or ea <= tol_abs * 0.01) and ea <= tol_abs
    print(f"{'ok  ' if ok else 'FAIL'} {what}: abs {ea:.3g} rel {er:.3g}")
    if not ok: fails.append(what)

ref = sf.reference()
tok = np.array(ref["tokens"], np.int32)
H = "blocks.2.hook_resid_post"
x = np.array(ref["models"]["stories260k"]["hooks"][H], np.float32)
recon = np.array(ref["saes"]["stories260k-L2-relu"]["reconstruction"], np.float32)
M = f"{fx}/models/stories260k"
np_model = oracles.NpModel(M)

# 1. the numpy model reproduces the reference clean CE from the hook
lp_clean = np_model.logprobs(x.astype(np.float64), 3)
close("numpy reference model: clean CE", oracles.ce(lp_clean, tok), ref["models"]["stories260k"]["ce_per_token"])

# 2. spliced everywhere (no keep) vs the reference spliced CE; KL and ablated vs numpy
sf.pack(sf.acts_stream([(tok, x, recon)], H), "in.sf")
lf = [f for f in sf.forward(["--model", M, "--from", H, "--loss", "--ablate"], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
close("ce_clean", lf["ce_clean"], ref["models"]["stories260k"]["ce_per_token"])
close("ce_spliced vs reference spliced_ce_per_token", lf["ce_spliced"], ref["saes"]["stories260k-L2-relu"]["spliced_ce_per_token"])
lp_s = np_model.logprobs(recon.astype(np.float64), 3)
lp_a = np_model.logprobs(np.zeros_like(x, np.float64), 3)
close("kl_spliced", lf["kl_spliced"], oracles.kl(lp_clean, lp_s), 1e-4)
close("ce_ablated", lf["ce_ablated"], oracles.ce(lp_a, tok))
close("kl_ablated", lf["kl_ablated"], oracles.kl(lp_clean, lp_a), 1e-4)
if set(k for k in lf if k not in ("sf", "kind", "seq")) != {"tokens", "hook", "ce_clean", "ce_spliced", "kl_spliced", "ce_ablated", "kl_ablated"}:
    fails.append(f"loss frame keys {sorted(lf)}")

# 3. a keep mask: recon / zeros only where keep == 1
rng = np.random.default_rng(5)
keep = (rng.random(tok.shape) > 0.3).astype(np.uint8)
sf.pack(sf.acts_stream([(tok, x, recon, keep)], H), "in.sf")
lf = [f for f in sf.forward(["--model", M, "--from", H, "--loss", "--ablate"], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
k3 = keep[..., None].astype(bool)
lp_s = np_model.logprobs(np.where(k3, recon, x).astype(np.float64), 3)
lp_a = np_model.logprobs(np.where(k3, 0, x).astype(np.float64), 3)
close("keep: ce_spliced", lf["ce_spliced"], oracles.ce(lp_s, tok))
close("keep: kl_spliced", lf["kl_spliced"], oracles.kl(lp_clean, lp_s), 1e-4)
close("keep: ce_ablated", lf["ce_ablated"], oracles.ce(lp_a, tok))
close("keep: kl_ablated", lf["kl_ablated"], oracles.kl(lp_clean, lp_a), 1e-4)
if not np.array_equal(lf.get("keep"), keep): fails.append("keep not carried")

# 3b. rows without an outlier next to rows with one: the ablated rows that are all zeros are not
#     run (their logits are exactly zero: CE = ln V), the others are packed and run
keep = np.ones(tok.shape, np.uint8)
keep[1::2] = (rng.random(keep[1::2].shape) > 0.3)
keep[1::2, 0] = 0
sf.pack(sf.acts_stream([(tok, x, recon, keep)], H), "in.sf")
lf = [f for f in sf.forward(["--model", M, "--from", H, "--loss", "--ablate"], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
lp_a = np_model.logprobs(np.where(keep[..., None].astype(bool), 0, x).astype(np.float64), 3)
close("mixed rows: ce_ablated", lf["ce_ablated"], oracles.ce(lp_a, tok))
close("mixed rows: kl_ablated", lf["kl_ablated"], oracles.kl(lp_clean, lp_a), 1e-4)
V = lp_clean.shape[-1]
if not np.all(lf["ce_ablated"][0::2] == np.float32(np.log(V))):
    fails.append("mixed rows: an all-kept row's ce_ablated is not exactly ln V")
print(f"mixed rows: {tok.shape[0] // 2} of {tok.shape[0]} ablated rows all zeros, ce_ablated there = ln {V} exactly")

# 4. a splice that changes nothing: KL 0, CE equal within rounding
sf.pack(sf.acts_stream([(tok, x, x)], H), "in.sf")
lf = [f for f in sf.forward(["--model", M, "--from", H, "--loss"], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
# (the same tokens in other rows of one sgemm may round differently: 1 ulp of a CE is ~2e-6)
d_id, kl_id = float(np.abs(lf["ce_spliced"] - lf["ce_clean"]).max()), float(np.abs(lf["kl_spliced"]).max())
print(f"identity splice: max |ce_spliced - ce_clean| {d_id:.3g}, max |kl_spliced| {kl_id:.3g}")
if not (d_id <= 1e-5 and kl_id <= 1e-8):
    fails.append("identity splice: CE differs or KL not 0")
if "ce_ablated" in lf: fails.append("ce_ablated without --ablate")

# 5. --vocab-limit: the softmax over the first N ids only
N = int(tok.max()) + 1
lf = [f for f in sf.forward(["--model", M, "--from", H, "--loss", "--vocab-limit", str(N)], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
close(f"--vocab-limit {N}: ce_clean", lf["ce_clean"], oracles.ce(np_model.logprobs(x.astype(np.float64), 3, vocab=N), tok))

# 6. the other architectures (untied + window; Gemma tied, 1 + w norms, gelu) from block 1
for name in ("tiny-mistral", "tiny-gemma"):
    r = sf.reference(name)
    t = np.array(r["tokens"], np.int32)
    hx = np.array(r["hooks"]["blocks.1.hook_resid_pre"], np.float32)
    m = oracles.NpModel(f"{fx}/models/{name}")
    lpc = m.logprobs(hx.astype(np.float64), 1)
    close(f"{name}: numpy model clean CE", oracles.ce(lpc, t), r["ce_per_token"])
    rc = (hx * 0.9 + 0.05 * rng.standard_normal(hx.shape)).astype(np.float32)
    sf.pack(sf.acts_stream([(t, hx, rc)], "blocks.1.hook_resid_pre"), "in.sf")
    lf = [f for f in sf.forward(["--model", f"{fx}/models/{name}", "--from", "blocks.1.hook_resid_pre", "--loss", "--ablate"], "in.sf", "loss.sf") if f["kind"] == "loss"][0]
    close(f"{name}: ce_clean", lf["ce_clean"], r["ce_per_token"])
    lps, lpa = m.logprobs(rc.astype(np.float64), 1), m.logprobs(np.zeros_like(hx, np.float64), 1)
    close(f"{name}: ce_spliced", lf["ce_spliced"], oracles.ce(lps, t))
    close(f"{name}: kl_spliced", lf["kl_spliced"], oracles.kl(lpc, lps), 1e-4)
    close(f"{name}: ce_ablated", lf["ce_ablated"], oracles.ce(lpa, t))
    close(f"{name}: kl_ablated", lf["kl_ablated"], oracles.kl(lpc, lpa), 1e-4)
print("failed:", fails) if fails else None
sys.exit(1 if fails else 0)
PYEOF

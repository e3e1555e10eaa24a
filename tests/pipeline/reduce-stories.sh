#!/usr/bin/env bash
# The full two-stream study on the stories260k fixtures: reference activations at
# blocks.2.hook_resid_post of the base, ft-mild and ft-code (4 x 64 tokens, 2 frames of 2 rows),
# features/reconstructions of the relu SAE computed in numpy (checked against the reference's
# feats_csr first), clean CE (reference) and spliced CE (reference) as loss frames. sf-reduce
# --base/--finetune with --base-model/--finetune-model/--sae; the test checks the similarity,
# per-model and transfer figures, the logit similarity and the unembedding Frobenius figures
# against an independent numpy computation over the same data.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
"$PY" - <<'EOF' || exit 1
import numpy as np
import oracles
import sfstream as sf
FX = sf.FX
ref = sf.reference()
HOOK = "blocks.2.hook_resid_post"
tok = np.array(ref["tokens"], np.int32)                       # (4, 64)
sae = sf.read_safetensors(f"{FX}/saes/stories260k-L2-relu/sae_weights.safetensors")
def encode(x):                                                # relu SAE, apply_b_dec_to_input
    x = x.astype(np.float64)
    f = np.maximum((x - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"], 0).astype(np.float32)
    return f, (f.astype(np.float64) @ sae["W_dec"] + sae["b_dec"]).astype(np.float32)
acts = {m: np.array(ref["models"][m]["hooks"][HOOK], np.float32) for m in ("stories260k", "stories260k-ft-mild", "stories260k-ft-code")}
enc = {m: encode(a.reshape(-1, 64)) for m, a in acts.items()}
c = sf.Checker()
# the numpy encoder agrees with the reference features of the base
rc = ref["saes"]["stories260k-L2-relu"]["feats_csr"]
F0 = np.zeros((256, 512), np.float32)
for t in range(256):
    for e in range(rc["indptr"][t], rc["indptr"][t + 1]): F0[t, rc["index"][e]] = rc["value"][e]
c.eq(((F0 > 0) == (enc["stories260k"][0] > 0)).all(), True, "numpy encoder: active sets = reference")
c.close(enc["stories260k"][0], F0, "numpy encoder: values = reference", rtol=0, atol=1e-5)
ce = {m: np.array(ref["models"][m]["ce_per_token"], np.float32) for m in acts}
spl = np.array(ref["saes"]["stories260k-L2-relu"]["spliced_ce_per_token"], np.float32)
def write(m, path, loss):
    F, Y = enc[m]
    fr = [sf.acts_frame(s, tok[2*s:2*s+2], acts[m][2*s:2*s+2], Y[128*s:128*s+128].reshape(2, 64, 64),
                        feats=F[128*s:128*s+128].reshape(2, 64, 512), hook=HOOK) for s in range(2)]
    sf.pack(sf.stream(fr, model=m, hook=HOOK, sae="stories260k-L2-relu"), path)
    if loss:
        lf = [{"sf": 1, "kind": "loss", "seq": s, "tokens": sf.tensor(tok[2*s:2*s+2], "i32"), "ce_clean": sf.tensor(ce[m][2*s:2*s+2], "f32"),
               **({"ce_spliced": sf.tensor(spl[2*s:2*s+2], "f32")} if m == "stories260k" else {})} for s in range(2)]
        sf.pack(sf.stream(lf, model=m), path + ".loss")
for m in acts: write(m, m + ".sf", True)
M = f"{FX}/models"
for ft, band in (("stories260k-ft-mild", (0.9, 1.0)), ("stories260k-ft-code", (0.3, 0.85))):
    got = sf.run_json(["sf-reduce", "--base", "stories260k.sf", "--finetune", ft + ".sf", "--base", "stories260k.sf.loss", "--finetune", ft + ".sf.loss",
                 "--base-model", f"{M}/stories260k", "--finetune-model", f"{M}/{ft}", "--sae", f"{FX}/saes/stories260k-L2-relu"])
    cos, l2 = oracles.sim_ref(acts["stories260k"], acts[ft])
    s = got["similarity"]
    c.close(s["cos_mean"], cos.mean(), f"{ft} cos_mean", rtol=1e-6)
    c.eq(band[0] < s["cos_mean"] < band[1], True, f"{ft} cos_mean {s['cos_mean']:.3f} in the fixture's band {band}")
    c.close(s["l2_mean"], l2.mean(), f"{ft} l2_mean", rtol=1e-6)
    c.close(s["cos_by_position"], cos.mean(0), f"{ft} cos_by_position", rtol=1e-6)
    c.close(s["cos_by_row"], cos.mean(1), f"{ft} cos_by_row", rtol=1e-6)
    c.close(s["l2_by_position"], l2.mean(0), f"{ft} l2_by_position", rtol=1e-6)
    for name, m in (("base", "stories260k"), ("finetune", ft)):
        F, Y = enc[m]
        fr = oracles.feats_ref(F)
        X = acts[m].reshape(-1, 64)
        rr = oracles.recon_ref([(X[:128], Y[:128], None), (X[128:], Y[128:], None)])
        b = got[name]
        for k in ("l0", "l1", "dead_fraction"): c.close(b[k], fr[k], f"{ft} {name}.{k}")
        c.close(b["log_density"], fr["log_density"], f"{ft} {name}.log_density")
        for k in rr: c.close(b[k], rr[k], f"{ft} {name}.{k}", rtol=1e-9)
        c.close(b["ce_clean"], oracles.f64(ce[m]).mean(), f"{ft} {name}.ce_clean")
    c.close(got["base"]["ce_delta"], oracles.f64(spl).mean() - oracles.f64(ce["stories260k"]).mean(), f"{ft} base.ce_delta")
    c.close(got["base"]["ce_spliced"], ref["saes"]["stories260k-L2-relu"]["spliced_ce_mean"], f"{ft} base.ce_spliced vs reference", rtol=1e-6)
    tr = oracles.transfer_ref(enc["stories260k"][0], enc[ft][0])
    t = got["transfer"]
    c.eq(t["activation_error_dead_base"]["features"], tr["dead_only_base"].tolist(), f"{ft} dead_only_base")
    c.eq(t["activation_error_dead_finetune"]["features"], tr["dead_only_finetune"].tolist(), f"{ft} dead_only_finetune")
    c.eq(t["activation_similarity"]["features"], tr["regular"].tolist(), f"{ft} regular set")
    c.close(t["activation_error_dead_base"]["values"], tr["act_error"][tr["dead_only_base"]], f"{ft} activation_error_dead_base")
    c.close(t["activation_similarity"]["values"], tr["act_sim"][tr["regular"]], f"{ft} activation_similarity", rtol=1e-8)
    c.close(t["density_pearson"], tr["density_pearson"], f"{ft} density_pearson")
    # logit weight similarity and the unembedding
    Wb, Wf = oracles.unembed_ref(f"{M}/stories260k"), oracles.unembed_ref(f"{M}/{ft}")
    reg = tr["regular"]
    lb, lf = sae["W_dec"][reg] @ Wb, sae["W_dec"][reg] @ Wf
    want = [oracles.pearson(lb[i], lf[i]) for i in range(len(reg))]
    c.close(t["logit_similarity"]["values"], want, f"{ft} logit_similarity", rtol=0, atol=2e-5)
    c.close(t["unembed_frobenius_ratio"], np.linalg.norm(Wb) / np.linalg.norm(Wf), f"{ft} unembed_frobenius_ratio", rtol=1e-6)
    c.close(t["unembed_frobenius_error"], np.linalg.norm(Wb - Wf), f"{ft} unembed_frobenius_error", rtol=1e-6)
    print(f"{ft}: cos {s['cos_mean']:.4f}, L0 {got['base']['l0']:.2f} -> {got['finetune']['l0']:.2f}, "
          f"r2 {got['base']['r2_pooled']:.3f} -> {got['finetune']['r2_pooled']:.3f}, regular {t['regular_count']}, "
          f"act sim {t['activation_similarity']['mean']:.3f}, logit sim {t['logit_similarity']['mean']:.4f}, "
          f"density r {t['density_pearson']:.3f}, frob ratio {t['unembed_frobenius_ratio']:.4f}")
# the same study through the real pipeline: acts-only streams -> sf-encode --splice -> sf-reduce
import shutil, subprocess
c.eq(shutil.which("sf-encode") is not None, True, "sf-encode is built (make builds it)")
if shutil.which("sf-encode"):
    SAE = f"{FX}/saes/stories260k-L2-relu"
    for m in ("stories260k", "stories260k-ft-code"):
        fr = [sf.acts_frame(s, tok[2*s:2*s+2], acts[m][2*s:2*s+2], hook=HOOK) for s in range(2)]
        sf.pack(sf.stream(fr, model=m, hook=HOOK), m + ".acts.sf")
        subprocess.run(["sf-encode", "--sae", SAE, "--splice", "--threads", "1", "-i", m + ".acts.sf", "-o", m + ".enc.sf"], check=True)
    got = sf.run_json(["sf-reduce", "--base", "stories260k.enc.sf", "--finetune", "stories260k-ft-code.enc.sf"])
    for name, m in (("base", "stories260k"), ("finetune", "stories260k-ft-code")):
        F, Y = enc[m]; X = acts[m].reshape(-1, 64)
        fr, rr = oracles.feats_ref(F), oracles.recon_ref([(X[:128], Y[:128], None), (X[128:], Y[128:], None)])
        c.close(got[name]["l0"], fr["l0"], f"sf-encode pipeline {name}.l0", rtol=0, atol=2e-2)   # a flip near 0 moves L0 by 1/256
        c.close(got[name]["l1"], fr["l1"], f"sf-encode pipeline {name}.l1", rtol=1e-4)
        for k in rr: c.close(got[name][k], rr[k], f"sf-encode pipeline {name}.{k}", rtol=1e-4, atol=1e-5)
    tr = oracles.transfer_ref(enc["stories260k"][0], enc["stories260k-ft-code"][0])
    c.close(got["transfer"]["activation_similarity"]["mean"], np.nanmean(tr["act_sim"][tr["regular"]]), "sf-encode pipeline activation_similarity.mean", rtol=0, atol=5e-3)
else:
    print("note: sf-encode not built; the pipeline variant was not run")
c.done()
EOF

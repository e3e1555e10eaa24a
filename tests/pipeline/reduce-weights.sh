#!/usr/bin/env bash
# sf-reduce --weights-only: relative Frobenius deviation ||A - B|| / ||A|| of every tensor of two
# checkpoints and the unembedding Frobenius ratio/error (W_U = norm weight folded in, centred
# over the vocabulary) against numpy: stories260k vs ft-code (f32, tied), the sharded f16
# tiny-llama against itself (all zero, both shards read), and tiny-gemma (bf16, tied) against a
# perturbed copy with an extra vocabulary row, where the final norm is applied as (1 + w).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
"$PY" - <<'EOF' || exit 1
import os, shutil
import numpy as np
import oracles
import sfstream as sf
M = os.path.join(sf.FX, "models")
c = sf.Checker()
def check(a, b, gemma, what):
    got = sf.run_json(["sf-reduce", "--weights-only", "--base-model", a, "--finetune-model", b])
    A, B = sf.read_checkpoint(a), sf.read_checkpoint(b)
    wd = got["weight_deviation"]["tensors"]
    c.eq(sorted(wd), sorted(A), f"{what}: every tensor")
    for k in A:
        x, y = A[k], B[k][: A[k].shape[0]]
        want = np.linalg.norm(x - y) / np.linalg.norm(x)
        c.close(wd[k], want, f"{what}: {k}", rtol=1e-6, atol=1e-9)
    return got, oracles.unembed_ref(a, gemma)
got, Wa = check(f"{M}/stories260k", f"{M}/stories260k-ft-code", False, "stories")
Wb = oracles.unembed_ref(f"{M}/stories260k-ft-code")
c.close(got["transfer"]["unembed_frobenius_ratio"], np.linalg.norm(Wa) / np.linalg.norm(Wb), "stories frobenius ratio", rtol=1e-6)
c.close(got["transfer"]["unembed_frobenius_error"], np.linalg.norm(Wa - Wb), "stories frobenius error", rtol=1e-6)
got, _ = check(f"{M}/tiny-llama-sharded", f"{M}/tiny-llama-sharded", False, "sharded")
c.eq(got["weight_deviation"]["max"], 0.0, "same checkpoint: deviation 0")
c.close(got["transfer"]["unembed_frobenius_ratio"], 1.0, "same checkpoint: ratio 1")
# tiny-gemma vs a perturbed copy (bf16, one extra vocabulary row to cut)
os.makedirs("gemma-ft", exist_ok=True)
shutil.copy(f"{M}/tiny-gemma/config.json", "gemma-ft/config.json")
rng = np.random.default_rng(4)
G = sf.read_checkpoint(f"{M}/tiny-gemma")
P = {k: v + rng.normal(0, 0.05 * (np.abs(v).mean() + 1e-3), v.shape) for k, v in G.items()}
P["model.embed_tokens.weight"] = np.concatenate([P["model.embed_tokens.weight"], rng.normal(0, 0.03, (1, P["model.embed_tokens.weight"].shape[1]))])
sf.write_safetensors("gemma-ft/model.safetensors", P, "BF16")
got, Wa = check(f"{M}/tiny-gemma", "gemma-ft", True, "gemma")
P2 = sf.read_checkpoint("gemma-ft")
E = P2["model.embed_tokens.weight"][:G["model.embed_tokens.weight"].shape[0]]
Wp = (P2["model.norm.weight"] + 1.0)[:, None] * E.T
Wp -= Wp.mean(1, keepdims=True)
c.close(got["transfer"]["unembed_frobenius_ratio"], np.linalg.norm(Wa) / np.linalg.norm(Wp), "gemma frobenius ratio (1 + w)", rtol=1e-6)
c.close(got["transfer"]["unembed_frobenius_error"], np.linalg.norm(Wa - Wp), "gemma frobenius error (1 + w)", rtol=1e-6)
Wp0 = P2["model.norm.weight"][:, None] * E.T; Wp0 -= Wp0.mean(1, keepdims=True)
Wa0 = G["model.norm.weight"][:, None] * G["model.embed_tokens.weight"].T; Wa0 -= Wa0.mean(1, keepdims=True)
c.eq(abs(np.linalg.norm(Wa0 - Wp0) - got["transfer"]["unembed_frobenius_error"]) > 1e-3, True, "plain w would give another error")
c.done()
EOF

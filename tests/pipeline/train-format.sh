#!/usr/bin/env bash
# sf-train's files and initialisation on a hand-made stream (16 tokens, d 4): with a learning
# rate of ~0 the written SAE is the initial one: W_enc = W_dec^T, decoder rows of norm
# --dec-init-norm, b_enc = 0, b_dec = the mean of the kept tokens (the outlier marked keep = 0
# is left out). sparsity.safetensors = log10(density + 1e-10) recomputed in numpy; TopK keeps
# at most k features; the safetensors layout is checked by the numpy reader.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'PY' || die "acts stream"
import numpy as np
import sfstream as sf
r = np.random.default_rng(5); x = r.normal(size=(2, 8, 4)).astype(np.float32); x[1, 7] = 1000
keep = np.ones((2, 8), np.uint8); keep[1, 7] = 0
H = "blocks.1.hook_resid_pre"
sf.pack(sf.stream([sf.acts_frame(0, np.arange(16).reshape(2, 8), x, keep=keep, hook=H)], hook=H, ctx=8, bos=False, model="m/tiny"),
        "acts.sf")
np.save('x.npy', x.reshape(-1, 4)[:15])
PY
sf-train -i acts.sf -o sae --d-sae 6 --steps 1 --lr 1e-12 --dec-init-norm 0.25 --seed 3 || die "sf-train relu"
sf-train -i acts.sf -o topk --d-sae 6 --k 2 --steps 30 --lr 1e-2 --seed 3 || die "sf-train topk"
"$PY" - <<'PY' || die "numpy checks"
import numpy as np
import oracles
import sfstream as sf
def load(d):   # cfg and weights of an SAE written by sf-train: F32 only, the writer's layout checked
    return sf.read_sae(d, strict=True, dtypes=("F32",))
x = np.load('x.npy').astype(np.float64)
cfg, s = load('sae')
assert s['W_enc'].shape == (4, 6) and s['W_dec'].shape == (6, 4) and s['b_enc'].shape == (6,) and s['b_dec'].shape == (4,)
assert np.allclose(s['W_enc'], s['W_dec'].T, atol=1e-6), 'W_enc != W_dec^T'
assert np.allclose(np.linalg.norm(s['W_dec'], axis=1), 0.25, atol=1e-5), np.linalg.norm(s['W_dec'], axis=1)
assert np.allclose(s['b_enc'], 0, atol=1e-6) and np.allclose(s['b_dec'], x.mean(0), atol=1e-5), (s['b_dec'], x.mean(0))
assert cfg['hook_name'] == 'blocks.1.hook_resid_pre' and cfg['hook_layer'] == 1 and cfg['context_size'] == 8
assert cfg['prepend_bos'] is False and cfg['model_name'] == 'tiny' and cfg['d_sae'] == 6 and cfg['activation_fn_str'] == 'relu'
for d in ['sae', 'topk']:
    cfg, s = load(d)
    f, _ = oracles.sae_ref(cfg, s, x)
    want = np.log10((f > 0).mean(0) + 1e-10)
    got = sf.read_safetensors(d + '/sparsity.safetensors', strict=True, dtypes=("F32",))['sparsity']
    assert np.allclose(got, want, atol=1e-5), (d, got, want)
t, s = load('topk')
assert t['activation_fn_str'] == 'topk' and t['activation_fn_kwargs'] == {'k': 2}
f, _ = oracles.sae_ref(t, s, x)
assert (f > 0).sum(1).max() <= 2
print('ok')
PY

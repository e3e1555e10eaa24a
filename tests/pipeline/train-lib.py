# tests/pipeline/train-lib.py - independent numpy checks of an SAE written by sf-train.
# usage: sf-cat -i acts.sf | $PY train-lib.py eval SAE_DIR [MAX_TOKENS]   -> prints "ev L0 mse n"
#        $PY train-lib.py cfgkeys SAE_DIR FIXTURE_SAE_DIR                  -> exit 1 if key sets differ
import json, sys
import numpy as np

def load_st(path):
    b = open(path, 'rb').read()
    n = int.from_bytes(b[:8], 'little')
    assert n % 8 == 0, f'{path}: header length {n} not a multiple of 8'
    h = json.loads(b[8:8 + n])
    names = [k for k in h if k != '__metadata__']
    assert names == sorted(names), f'{path}: tensors not sorted: {names}'
    off = 0; out = {}
    for k in names:
        v = h[k]; s, e = v['data_offsets']
        assert s == off, f'{path}: {k} not contiguous'; off = e
        assert v['dtype'] == 'F32'
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], np.float32).reshape(v['shape']).astype(np.float64)
    assert 8 + n + off == len(b), f'{path}: trailing bytes'
    return out

def encode(sae, cfg, x):
    if cfg.get('normalize_activations') == 'constant_norm_rescale':
        c = np.sqrt(x.shape[1]) / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    else:
        c = np.ones((x.shape[0], 1))
    u = x * c - (sae['b_dec'] if cfg.get('apply_b_dec_to_input', True) else 0)
    pre = u @ sae['W_enc'] + sae['b_enc']
    if cfg['activation_fn_str'] == 'topk':
        k = cfg['activation_fn_kwargs']['k']
        th = -np.sort(-pre, axis=1)[:, k - 1:k]
        f = np.where(pre >= th, np.maximum(pre, 0), 0)
    else:
        f = np.maximum(pre, 0)
    xh = (f @ sae['W_dec'] + sae['b_dec']) / c
    return f, xh

def read_acts(limit):
    xs = []; n = 0
    for line in sys.stdin:
        fr = json.loads(line)
        if fr['kind'] != 'acts' or n >= limit: continue
        a = np.array(fr['acts']['data'], np.float64).reshape(-1, fr['acts']['shape'][2])
        xs.append(a); n += len(a)
    return np.concatenate(xs)[:limit]

if sys.argv[1] == 'eval':
    d = sys.argv[2]
    sae = load_st(d + '/sae_weights.safetensors'); cfg = json.load(open(d + '/cfg.json'))
    x = read_acts(int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 30)
    f, xh = encode(sae, cfg, x)
    se = ((x - xh) ** 2).sum(1); sv = ((x - x.mean(0)) ** 2).sum(1)
    print(f'{np.mean(1 - se / sv):.6f} {np.mean((f > 0).sum(1)):.4f} {se.mean():.6f} {len(x)}')
elif sys.argv[1] == 'cfgkeys':
    a = json.load(open(sys.argv[2] + '/cfg.json')); b = json.load(open(sys.argv[3] + '/cfg.json'))
    if list(a) != list(b): print('keys differ:', list(a), list(b)); sys.exit(1)

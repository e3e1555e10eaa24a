"""oracles - the independent numpy (float64) references the tests compare saeflow's stages
against, written from the specs (SAELens 3.22, Hugging Face's Llama/Mistral/Gemma,
../shared/STUDY.md), not from the C code, on dense arrays with the whole data in memory (the
opposite of the stages' streaming sums). Nothing here runs saeflow; files are read with
sfstream. `import oracles`.

  SAE          sae_ref (encode + decode, every architecture and cfg flag), sae_metrics
  model        NpModel (blocks, final norm, log-softmax), ce, kl, unembed_ref
  study        feats_ref, recon_ref, sim_ref, pearson, transfer_ref, edges, hist_counts
"""
import json

import numpy as np

from sfstream import read_checkpoint


def f64(a):
    """the float32 values of a, as float64"""
    return np.asarray(a, np.float32).astype(np.float64)


# ---- SAE (SAELens 3.22) ---------------------------------------------------------------------

def sae_ref(cfg, t, x, norm_scaling_factor=None):
    """SAELens 3.22 encode + decode of x (n, d_in). Returns (f (n, d_sae), recon (n, d_in)).
    cfg: the cfg.json dict (SAELens defaults for missing keys, legacy names)."""
    t = {k: np.asarray(v, np.float64) for k, v in t.items()}
    x = np.asarray(x, np.float64)
    arch = cfg.get("architecture", "standard")
    act = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu"))
    if arch == "topk":
        arch, act = "standard", "topk"
    kw = cfg.get("activation_fn_kwargs") or {}
    k = kw.get("k", cfg.get("k"))
    norm = cfg.get("normalize_activations", "none")
    if isinstance(norm, bool):
        norm = "expected_average_only_in" if norm else "none"
    apply_b_dec = cfg.get("apply_b_dec_to_input", True)

    # normalisation in
    if norm == "constant_norm_rescale":
        c = np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)
        xs = x * c
    elif norm == "expected_average_only_in":
        c = norm_scaling_factor if norm_scaling_factor is not None else 1.0
        xs = x * c
    elif norm == "layer_norm":
        mu = x.mean(axis=1, keepdims=True)
        xc = x - mu
        sd = xc.std(axis=1, ddof=1, keepdims=True)
        xs = xc / (sd + 1e-5)
    else:
        xs = x
    u = xs - t["b_dec"] if apply_b_dec else xs

    def activation(z):
        if act == "relu":
            return np.maximum(z, 0)
        if act == "tanh-relu":
            return np.tanh(np.maximum(z, 0))
        if act == "topk":
            out = np.zeros_like(z)
            idx = np.argsort(-z, axis=1, kind="stable")[:, :k]
            rows = np.arange(z.shape[0])[:, None]
            out[rows, idx] = np.maximum(z[rows, idx], 0)
            return out
        raise ValueError(act)

    if arch == "gated":
        gate = (u @ t["W_enc"] + t["b_gate"]) > 0
        mag = u @ (t["W_enc"] * np.exp(t["r_mag"])) + t["b_mag"]
        f = gate * activation(mag)
    elif arch == "jumprelu":
        z = u @ t["W_enc"] + t["b_enc"]
        f = activation(z) * (z > t["threshold"])
    else:
        f = activation(u @ t["W_enc"] + t["b_enc"])

    fs = f
    sf = t.get("finetuning_scaling_factor", t.get("scaling_factor"))
    if cfg.get("finetuning_scaling_factor") and sf is not None:
        fs = f * sf
    r = fs @ t["W_dec"] + t["b_dec"]
    if norm in ("constant_norm_rescale", "expected_average_only_in"):
        r = r / c
    elif norm == "layer_norm":
        r = r * sd + mu
    return f, r


def sae_metrics(cfg, t, x):
    """(explained variance (mean over tokens), L0, mse) of the SAE on x (n, d_in)"""
    x = np.asarray(x, np.float64)
    f, xh = sae_ref(cfg, t, x)
    se = ((x - xh) ** 2).sum(1)
    sv = ((x - x.mean(0)) ** 2).sum(1)
    return float(np.mean(1 - se / sv)), float(np.mean((f > 0).sum(1))), float(se.mean())


# ---- the model (Hugging Face semantics) -------------------------------------------------------

class NpModel:
    """a Llama / Mistral / Gemma checkpoint directory, float64"""
    def __init__(self, d):
        self.cfg, self.w = json.load(open(f"{d}/config.json")), read_checkpoint(d)
        c = self.cfg
        self.gemma = c["architectures"][0] == "GemmaForCausalLM"
        self.d = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads", self.nh)
        self.hd = c.get("head_dim") or self.d // self.nh
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.window = c.get("sliding_window") if c["architectures"][0] == "MistralForCausalLM" else None
        tied = c.get("tie_word_embeddings", self.gemma)
        self.head = self.w["model.embed_tokens.weight"] if tied else self.w["lm_head.weight"]

    def norm(self, x, wt):
        wt = 1 + wt if self.gemma else wt
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * wt

    def block(self, x, l):
        """x (R, C, d) float64 -> output of block l."""
        W = lambda s: self.w[f"model.layers.{l}.{s}"]
        R, C, _ = x.shape
        h = self.norm(x, W("input_layernorm.weight"))
        q = (h @ W("self_attn.q_proj.weight").T).reshape(R, C, self.nh, self.hd)
        k = (h @ W("self_attn.k_proj.weight").T).reshape(R, C, self.nkv, self.hd)
        v = (h @ W("self_attn.v_proj.weight").T).reshape(R, C, self.nkv, self.hd)
        half = self.hd // 2
        inv = self.theta ** (-2.0 * np.arange(half) / self.hd)
        ang = np.arange(C)[:, None] * inv[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1)[None, :, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, -1)[None, :, None, :]
        rot = lambda t: np.concatenate([-t[..., half:], t[..., :half]], -1)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        rep = self.nh // self.nkv
        k = np.repeat(k, rep, axis=2)
        v = np.repeat(v, rep, axis=2)
        s = np.einsum("rihd,rjhd->rhij", q, k) / np.sqrt(self.hd)
        i, j = np.arange(C)[:, None], np.arange(C)[None, :]
        mask = j <= i
        if self.window:
            mask &= j > i - self.window
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        o = np.einsum("rhij,rjhd->rihd", p, v).reshape(R, C, self.nh * self.hd)
        x = x + o @ W("self_attn.o_proj.weight").T
        h = self.norm(x, W("post_attention_layernorm.weight"))
        g = h @ W("mlp.gate_proj.weight").T
        if self.gemma:
            g = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
        else:
            g = g / (1 + np.exp(-g))
        return x + (g * (h @ W("mlp.up_proj.weight").T)) @ W("mlp.down_proj.weight").T

    def logprobs(self, x, lo, vocab=None):
        """Blocks lo.. on x (R, C, d), final norm, log-softmax (R, C, V)."""
        for l in range(lo, self.cfg["num_hidden_layers"]):
            x = self.block(x, l)
        head = self.head if vocab is None else self.head[:vocab]
        z = self.norm(x, self.w["model.norm.weight"]) @ head.T
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))


def ce(lp, tok):
    """per-token CE (R, C - 1) of the next token under log-probs lp (R, C, V)"""
    return -np.take_along_axis(lp[:, :-1], np.asarray(tok)[:, 1:, None], -1)[..., 0]


def kl(lp_clean, lp_patched):
    """KL(clean || patched) per token (R, C - 1)"""
    return (np.exp(lp_clean) * (lp_clean - lp_patched)).sum(-1)[:, :-1]


def unembed_ref(d, gemma=False):
    """W_U (d_model, vocab): the final norm weight folded in, centred over the vocabulary"""
    w = read_checkpoint(d)
    E = w.get("lm_head.weight", w.get("model.embed_tokens.weight"))
    g = w["model.norm.weight"] + (1.0 if gemma else 0.0)
    WU = g[:, None] * E.T
    return WU - WU.mean(1, keepdims=True)


# ---- the study's metrics (../shared/STUDY.md) -------------------------------------------------

def feats_ref(F):
    """F: dense (n_tok, d_sae) float32 feature activations of one model, all tokens"""
    F = f64(F)
    dens = (F > 1e-10).mean(0)
    L = np.log10(dens + 1e-10)
    pos = F[F > 0]
    return {"l0": float((F > 1e-8).sum(1).mean()), "l1": float(F.sum(1).mean()), "log_density": L,
            "dead_count": int((L <= -9).sum()), "dead_fraction": float((L <= -9).mean()),
            "act_log10": np.log10(pos), "zeros": int(F.size - pos.size)}


def recon_ref(frames):
    """frames: list of (X (n,d), Y (n,d), keep (n,) bool or None) in stream order.
    r2_pooled over every scalar of the kept tokens; explained_variance with mu per frame."""
    Xs, Ys, ev = [], [], []
    for X, Y, keep in frames:
        X, Y = f64(X), f64(Y)
        if keep is not None:
            X, Y = X[np.asarray(keep, bool)], Y[np.asarray(keep, bool)]
        if len(X) == 0: continue
        mu = X.mean(0)
        ev.append(1 - ((X - Y) ** 2).sum(1) / ((X - mu) ** 2).sum(1))
        Xs.append(X); Ys.append(Y)
    X, Y = np.concatenate(Xs), np.concatenate(Ys)
    nx, ny = np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)
    return {"r2_pooled": float(1 - ((X - Y) ** 2).sum() / ((X - X.mean()) ** 2).sum()),
            "explained_variance": float(np.concatenate(ev).mean()),
            "mse": float(((X - Y) ** 2).sum(1).mean()),
            "cos_recon": float(((X * Y).sum(1) / (np.maximum(nx, 1e-12) * np.maximum(ny, 1e-12))).mean()),
            "l2_ratio": float((ny / np.maximum(nx, 1e-12)).mean())}


def sim_ref(A, B):
    """A, B: (rows, ctx, d) -> cos, l2 (rows, ctx) in float64"""
    A, B = f64(A), f64(B)
    na, nb = np.linalg.norm(A, axis=-1), np.linalg.norm(B, axis=-1)
    cos = (A * B).sum(-1) / (np.maximum(na, 1e-12) * np.maximum(nb, 1e-12))
    return cos, np.linalg.norm(A - B, axis=-1)


def pearson(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0: return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def transfer_ref(Fb, Ff):
    Fb, Ff = f64(Fb), f64(Ff)
    Lb = np.log10((Fb > 1e-10).mean(0) + 1e-10)
    Lf = np.log10((Ff > 1e-10).mean(0) + 1e-10)
    db = np.nonzero((Lb <= -8) & (Lf > -8))[0]
    df = np.nonzero((Lf <= -8) & (Lb > -8))[0]
    reg = np.nonzero((Lb >= -5) & (Lb <= -1) & (Lf >= -5) & (Lf <= -1))[0]
    err = np.abs(np.log10(Fb + 1e-10) - np.log10(Ff + 1e-10)).mean(0)
    sim = np.array([pearson(Fb[:, j], Ff[:, j]) for j in range(Fb.shape[1])])
    return {"Lb": Lb, "Lf": Lf, "dead_only_base": db, "dead_only_finetune": df, "regular": reg,
            "act_error": err, "act_sim": sim, "density_pearson": pearson(Lb, Lf),
            "max_f": np.maximum(Ff.max(0), 0), "max_b": np.maximum(Fb.max(0), 0)}


# histogram edges, written out independently of the C code
def edges(name):
    if name == "cos": return np.round(np.arange(201) * 0.01 - 1.0, 12)
    if name in ("norm", "l2"): return np.concatenate([[0.0], 10.0 ** (-3 + 0.025 * np.arange(321))])
    if name == "act": return np.round(-10 + 0.05 * np.arange(301), 12)
    if name == "dens": return np.round(-10.05 + 0.1 * np.arange(103), 12)
    raise KeyError(name)


def hist_counts(values, name):
    c, _ = np.histogram(np.asarray(values, np.float64), bins=edges(name))
    return c

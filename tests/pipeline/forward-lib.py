"""Helpers for the sf-forward tests (tests/pipeline/forward-*.sh): make streams with
`sf-cat --pack`, read them back with `sf-cat`, run sf-forward, compare with the fixtures'
references, and an independent numpy (float64) forward of the Llama/Mistral/Gemma blocks and the
loss (used where the references have no value, e.g. ablated CE and KL). Nothing here calls
saeflow's compute code.

    forward-lib.py check FIXTURE     every hook of a reference model + CE (exit 1 on a mismatch)
    forward-lib.py tiny DIR ARCH [SHARDS]   write a small random checkpoint (llama, mistral, gemma;
                                     hidden 32, 4 heads x 8, 2 kv heads, d_ff 48, 2 layers, vocab 64)
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

FX = os.environ.get("SF_FIXTURES", "")
TOL_HOOK = 2e-5      # max|ours - ref| / max|ref| per hook tensor
TOL_CE = 2e-5        # the same, per CE tensor


# ---- streams ---------------------------------------------------------------------------------

def tensor(dtype, a):
    a = np.asarray(a)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.reshape(-1).tolist()}


def pack(lines, path):
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    subprocess.run(["sf-cat", "--pack", "-o", path], input=text.encode(), check=True)


def unpack(path):
    out = subprocess.run(["sf-cat", "-i", path], capture_output=True, check=True).stdout.decode()
    frames = []
    for line in out.splitlines():
        f = json.loads(line)
        for k, v in list(f.items()):
            if isinstance(v, dict) and "dtype" in v and "data" in v:
                a = np.array(v["data"], dtype=np.float64).reshape(v["shape"])
                if v["dtype"] in ("f32", "f16", "bf16"):   # %.9g round-trips float32 exactly
                    a = a.astype(np.float32).astype(np.float64)
                f[k] = a
        frames.append(f)
    return frames


def tokens_stream(tok, path, meta=None):
    tok = np.asarray(tok, np.int32)
    pack([{"sf": 1, "kind": "header", "meta": meta or {}},
          {"sf": 1, "kind": "tokens", "seq": 0, "tokens": tensor("i32", tok)},
          {"sf": 1, "kind": "end", "frames": 1, "rows": int(tok.shape[0])}], path)


def acts_stream(tok, acts, hook, path, recon=None, keep=None):
    f = {"sf": 1, "kind": "acts", "seq": 0, "tokens": tensor("i32", np.asarray(tok, np.int32)),
         "hook": hook, "acts": tensor("f32", np.asarray(acts, np.float32))}
    if keep is not None:
        f["keep"] = tensor("u8", np.asarray(keep, np.uint8))
    if recon is not None:
        f["recon"] = tensor("f32", np.asarray(recon, np.float32))
    pack([{"sf": 1, "kind": "header", "meta": {"hook": hook}}, f,
          {"sf": 1, "kind": "end", "frames": 1, "rows": int(np.asarray(tok).shape[0])}], path)


def forward(args, inp, out):
    r = subprocess.run(["sf-forward", "-q", "-i", inp, "-o", out] + args, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"sf-forward {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()}")
    return unpack(out)


def rel(a, b):
    b = np.asarray(b, np.float64)
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


# ---- numpy reference forward (float64, HF semantics) ------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = buf[base + b:base + en]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float64)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(e["dtype"])
        out[name] = a.reshape(e["shape"])
    return out


def load_model(d):
    cfg = json.load(open(f"{d}/config.json"))
    w = {}
    idx = f"{d}/model.safetensors.index.json"
    if os.path.exists(idx):
        for f in sorted(set(json.load(open(idx))["weight_map"].values())):
            w.update(read_safetensors(f"{d}/{f}"))
    else:
        w = read_safetensors(f"{d}/model.safetensors")
    return cfg, w


class NpModel:
    def __init__(self, d):
        self.cfg, self.w = load_model(d)
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
    tok = np.asarray(tok)
    R, C = tok.shape
    return -np.take_along_axis(lp[:, :-1], tok[:, 1:, None], -1)[..., 0]


def kl(lp_clean, lp_patched):
    return (np.exp(lp_clean) * (lp_clean - lp_patched)).sum(-1)[:, :-1]


# ---- the reference check of one fixture -------------------------------------------------------

def check_model(model_dir, tok, hooks, ce_ref, tag, scratch):
    """Runs every hook of the reference and the loss; returns a list of failure strings."""
    fails = []
    tokens_stream(tok, f"{scratch}/tok.sf")
    n_layers = json.load(open(f"{model_dir}/config.json"))["num_hidden_layers"]
    got = {}
    worst = 0.0
    for l in range(n_layers):
        for kind in ("pre", "post"):
            name = f"blocks.{l}.hook_resid_{kind}"
            fr = forward(["--model", model_dir, "--hook", name], f"{scratch}/tok.sf", f"{scratch}/acts.sf")
            hdr, data = fr[0], [f for f in fr if f["kind"] == "acts"]
            if len(data) != 1 or data[0]["hook"] != name or hdr["meta"].get("hook") != name:
                fails.append(f"{tag} {name}: bad frames")
                continue
            if not np.array_equal(data[0]["tokens"], tok):
                fails.append(f"{tag} {name}: tokens not carried")
            a = data[0]["acts"]
            got[name] = a
            e = rel(a, hooks[name])
            worst = max(worst, e)
            if e > TOL_HOOK:
                fails.append(f"{tag} {name}: rel err {e:.3g} > {TOL_HOOK}")
    for l in range(1, n_layers):
        if f"blocks.{l}.hook_resid_pre" in got and not np.array_equal(got[f"blocks.{l}.hook_resid_pre"], got[f"blocks.{l-1}.hook_resid_post"]):
            fails.append(f"{tag} blocks.{l}.hook_resid_pre != blocks.{l-1}.hook_resid_post")
    # CE from the embedding (the whole model), and from a later hook on our own acts
    ce_full = None
    for name in ("blocks.0.hook_resid_pre", f"blocks.{min(2, n_layers - 1)}.hook_resid_post", f"blocks.{n_layers - 1}.hook_resid_pre"):
        if name not in got:
            continue
        acts_stream(tok, got[name], name, f"{scratch}/in.sf")
        fr = forward(["--model", model_dir, "--from", name, "--loss"], f"{scratch}/in.sf", f"{scratch}/loss.sf")
        lf = [f for f in fr if f["kind"] == "loss"][0]
        c = lf["ce_clean"]
        if c.shape != np.asarray(ce_ref).shape:
            fails.append(f"{tag} CE from {name}: shape {c.shape}")
            continue
        e = rel(c, ce_ref)
        ea = float(np.abs(c - np.asarray(ce_ref)).max())
        if e > TOL_CE or ea > 1e-4:
            fails.append(f"{tag} CE from {name}: rel err {e:.3g}, abs {ea:.3g}")
        if ce_full is None:
            ce_full = c
        elif rel(c, ce_full) > 1e-5:
            fails.append(f"{tag} CE from {name} differs from the full-model CE by {rel(c, ce_full):.3g}")
        if "ce_spliced" in lf or "ce_ablated" in lf:
            fails.append(f"{tag} unexpected spliced/ablated keys")
    print(f"{tag}: {2 * n_layers} hooks, worst rel err {worst:.3g}; CE checked")
    return fails


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        else:   # BF16, round to nearest even
            u = a.view(np.uint32).astype(np.uint64)
            b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_tiny(d, arch, shards=1, dtype=None, seed=0, **over):
    """A small random HF checkpoint (config.json + safetensors, optionally sharded)."""
    rng = np.random.default_rng(seed)
    c = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
         "intermediate_size": 48, "num_hidden_layers": 2, "vocab_size": 64, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "hidden_act": "silu"}
    c["architectures"] = [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "gemma": "GemmaForCausalLM"}[arch]]
    c["tie_word_embeddings"] = arch == "gemma"
    if arch == "mistral":
        c["sliding_window"] = 4
    c.update(over)
    d_, hd, ff, V = c["hidden_size"], c["head_dim"], c["intermediate_size"], c["vocab_size"]
    qd, kvd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    t = {"model.embed_tokens.weight": rng.normal(0, 1, (V, d_)), "model.norm.weight": 1 + rng.normal(0, 0.1, d_)}
    if not c["tie_word_embeddings"]:
        t["lm_head.weight"] = rng.normal(0, 0.02 * 4, (V, d_))
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, d_)
        t[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, d_)
        t[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.2, (qd, d_))
        t[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.2, (kvd, d_))
        t[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.1, (kvd, d_))
        t[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.1, (d_, qd))
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.2, (ff, d_))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.2, (ff, d_))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.1, (d_, ff))
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(c, f, indent=1)
    dtype = dtype or ("F16" if shards > 1 else "BF16")
    if shards == 1:
        write_safetensors(f"{d}/model.safetensors", t, dtype)
        return
    names = sorted(t)
    wm = {}
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: t[n] for i, n in enumerate(names) if i * shards // len(names) == s}
        write_safetensors(f"{d}/{fn}", part, dtype)
        wm.update({n: fn for n in part})
    with open(f"{d}/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f, indent=1)


def main():
    import tempfile
    what = sys.argv[2]
    scratch = tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/tmp"))
    fails = []
    if what.startswith("tiny-"):
        ref = json.load(open(f"{FX}/reference/{what}.json"))
        tok = np.array(ref["tokens"], np.int32)
        fails += check_model(f"{FX}/models/{what}", tok, ref["hooks"], ref["ce_per_token"], what, scratch)
    else:
        ref = json.load(open(f"{FX}/reference/stories260k.json"))
        tok = np.array(ref["tokens"], np.int32)
        for m in ("stories260k", "stories260k-ft-mild", "stories260k-ft-code"):
            r = ref["models"][m]
            fails += check_model(f"{FX}/models/{m}", tok, r["hooks"], r["ce_per_token"], m, scratch)
    for f in fails:
        print("FAIL:", f)
    return 1 if fails else 0


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "check":
    sys.exit(main())
if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "tiny":
    write_tiny(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)

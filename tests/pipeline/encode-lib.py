"""Helpers for the sf-encode / sf-outliers tests (imported by tests/pipeline/encode-*.sh and
outliers-*.sh): write SAELens SAE directories, make acts streams as sf-cat JSON lines, read
sf-cat output back, and an independent numpy (float64) implementation of SAELens 3.22 SAE
semantics. Nothing here calls saeflow's C code."""
import json
import struct
import subprocess

import numpy as np


# ---- SAE directories ----------------------------------------------------------------------

def write_safetensors(path, tensors, dtype="F32"):
    """tensors: name -> float array. dtype F32, F16 or BF16 (all tensors)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        elif dtype == "BF16":   # round to nearest even
            u = a.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
            b = u.tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def as_stored(a, dtype):
    """The float32 values a tensor has after a round trip through dtype."""
    a = np.asarray(a, np.float32)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        u = a.view(np.uint32).astype(np.uint64)
        u = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
        return u.view(np.float32)
    return a


def write_sae(d, cfg, tensors, dtype="F32"):
    import os
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/cfg.json", "w") as f:
        json.dump(cfg, f)
    write_safetensors(f"{d}/sae_weights.safetensors", tensors, dtype)


def random_sae(rng, d_in, d_sae, arch="standard", scale=1.0):
    """Random weights of an architecture (float32)."""
    t = {
        "W_enc": rng.normal(0, scale / np.sqrt(d_in), (d_in, d_sae)),
        "W_dec": rng.normal(0, 1 / np.sqrt(d_sae), (d_sae, d_in)),
        "b_dec": rng.normal(0, 0.1, d_in),
    }
    if arch == "gated":
        t["b_gate"] = rng.normal(0, 0.3, d_sae)
        t["r_mag"] = rng.normal(0, 0.3, d_sae)
        t["b_mag"] = rng.normal(0, 0.3, d_sae)
    else:
        t["b_enc"] = rng.normal(-0.1, 0.3, d_sae)
    if arch == "jumprelu":
        t["threshold"] = np.abs(rng.normal(0.3, 0.2, d_sae))
    return {k: v.astype(np.float32) for k, v in t.items()}


# ---- reference SAE (numpy, float64) ---------------------------------------------------------

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


# ---- streams --------------------------------------------------------------------------------

def tensor(dtype, a):
    a = np.asarray(a)
    data = [None if np.isnan(v) else float(v) for v in a.ravel()] if dtype in ("f32", "f16", "bf16") \
        else [int(v) for v in a.ravel()]
    return {"dtype": dtype, "shape": list(a.shape), "data": data}


def acts_stream(frames, hook="blocks.2.hook_resid_post", d_model=None, meta_extra=None,
                acts_dtype="f32"):
    """frames: list of (tokens [rows, ctx] int, acts [rows, ctx, d] float) -> JSON lines text.
    NaN/inf are written as Python's json writes them (NaN, Infinity)."""
    d = d_model if d_model is not None else frames[0][1].shape[2]
    meta = {"hook": hook, "d_model": d}
    meta.update(meta_extra or {})
    lines = [json.dumps({"sf": 1, "kind": "header", "meta": meta})]
    rows = 0
    for s, (tok, a) in enumerate(frames):
        a = np.asarray(a, np.float32)
        fr = {"sf": 1, "kind": "acts", "seq": s, "hook": hook,
              "tokens": {"dtype": "i32", "shape": list(tok.shape), "data": [int(v) for v in tok.ravel()]},
              "acts": {"dtype": acts_dtype, "shape": list(a.shape), "data": [float(v) for v in a.ravel()]}}
        lines.append(json.dumps(fr))
        rows += tok.shape[0]
    lines.append(json.dumps({"sf": 1, "kind": "end", "frames": len(frames), "rows": rows}))
    return "\n".join(lines) + "\n"


def pack(text, path):
    subprocess.run(["sf-cat", "--pack", "-o", path], input=text.encode(), check=True)


def unpack(path):
    """Frames of a stream (sf-cat JSON lines parsed), tensors as numpy arrays."""
    out = subprocess.run(["sf-cat", "-i", path], capture_output=True, check=True).stdout.decode()
    frames = []
    for line in out.splitlines():
        fr = json.loads(line)
        for key, v in list(fr.items()):
            if isinstance(v, dict) and "dtype" in v and "data" in v:
                fr[key] = np.array([np.nan if e is None else e for e in v["data"]],
                                   dtype=np.float64).reshape(v["shape"])
            elif isinstance(v, dict) and "indptr" in v:
                fr[key] = {"d_sae": v["d_sae"]}
                for kk in ("indptr", "index", "value"):
                    fr[key][kk] = np.array(v[kk]["data"], dtype=np.float64 if kk == "value" else np.int64)
        frames.append(fr)
    return frames


def csr_dense(sp):
    n = len(sp["indptr"]) - 1
    f = np.zeros((n, sp["d_sae"]))
    for t in range(n):
        a, b = sp["indptr"][t], sp["indptr"][t + 1]
        f[t, sp["index"][a:b]] = sp["value"][a:b]
    return f


def read_safetensors(path):
    """name -> float32 array (F32/F16/BF16), read independently of saeflow."""
    raw = open(path, "rb").read()
    hl = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + hl])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        buf = raw[8 + hl + a:8 + hl + b]
        if v["dtype"] == "F32":
            arr = np.frombuffer(buf, "<f4")
        elif v["dtype"] == "F16":
            arr = np.frombuffer(buf, "<f2").astype(np.float32)
        else:
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        out[k] = arr.reshape(v["shape"]).astype(np.float32)
    return out


# ---- command line for the CLI cases ---------------------------------------------------------
# encode-lib.py sae DIR [JSON]   a small random SAE (d_in 8, d_sae 24, seed 1); JSON edits:
#                                {"cfg": {...merged into cfg.json...}, "drop": [tensor names],
#                                 "shape": {name: [dims]} (replaced by zeros of that shape)}
# encode-lib.py acts [JSON]      an acts stream as JSON lines on stdout (2 rows x 3 positions,
#                                d 8, seed 2); JSON: {"hook", "d", "nan": [t], "no_acts": true,
#                                "no_meta": true}
def _main(argv):
    if argv[1] == "sae":
        edits = json.loads(argv[3]) if len(argv) > 3 else {}
        rng = np.random.default_rng(1)
        t = random_sae(rng, 8, 24)
        cfg = {"architecture": "standard", "d_in": 8, "d_sae": 24, "hook_name": "blocks.2.hook_resid_post",
               "activation_fn_str": "relu", "apply_b_dec_to_input": True, "normalize_activations": "none"}
        cfg.update(edits.get("cfg", {}))
        for n in edits.get("drop", []):
            t.pop(n, None)
        for n, shp in edits.get("shape", {}).items():
            t[n] = np.zeros(shp, np.float32)
        write_sae(argv[2], cfg, t)
    elif argv[1] == "acts":
        o = json.loads(argv[2]) if len(argv) > 2 else {}
        rng = np.random.default_rng(2)
        d = o.get("d", 8)
        x = rng.normal(0, 1, (2, 3, d)).astype(np.float32)
        for t in o.get("nan", []):
            x.reshape(-1, d)[t, 0] = np.nan
        text = acts_stream([(np.arange(6, dtype=np.int32).reshape(2, 3), x)],
                           hook=o.get("hook", "blocks.2.hook_resid_post"))
        if o.get("no_meta"):   # header without hook / d_model: the frames are checked instead
            lines = text.splitlines()
            lines[0] = json.dumps({"sf": 1, "kind": "header", "meta": {}})
            text = "\n".join(lines) + "\n"
        if o.get("no_acts"):
            lines = text.splitlines()
            fr = json.loads(lines[1]); del fr["acts"]; lines[1] = json.dumps(fr)
            text = "\n".join(lines) + "\n"
        print(text, end="")


if __name__ == "__main__":
    import sys
    _main(sys.argv)

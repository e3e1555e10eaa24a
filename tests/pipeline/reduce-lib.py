"""Helpers of the sf-reduce / sf-compare tests: make streams as sf-cat JSON lines, and compute
every metric of ../shared/STUDY.md independently in numpy float64 (dense arrays, whole data in
memory: the opposite of sf-reduce's streaming sums), then compare with sf-reduce's JSON."""
import json, math, subprocess
import numpy as np

# ---------------- streams ----------------
def T(a, dtype):
    a = np.asarray(a)
    conv = {"f32": np.float32, "i32": np.int32, "u32": np.uint32, "u8": np.uint8}[dtype]
    flat = a.astype(conv).reshape(-1)
    data = [float(v) if dtype == "f32" else int(v) for v in flat]
    return {"dtype": dtype, "shape": list(a.shape), "data": data}

def csr(F, d_sae):
    """dense (n_tok, d_sae) -> the SPEC's CSR map over entries != 0"""
    F = np.asarray(F, np.float32)
    indptr, index, value = [0], [], []
    for row in F:
        nz = np.nonzero(row)[0]
        index += [int(j) for j in nz]
        value += [float(row[j]) for j in nz]
        indptr.append(len(index))
    return {"d_sae": int(d_sae), "indptr": T(np.array(indptr), "u32"), "index": T(np.array(index, np.int64), "u32"),
            "value": T(np.array(value, np.float32), "f32")}

def header(**meta):
    return {"sf": 1, "kind": "header", "meta": meta}

def end(frames, rows):
    return {"sf": 1, "kind": "end", "frames": frames, "rows": rows}

def acts_frame(seq, tokens, acts=None, recon=None, keep=None, feats=None, hook="blocks.0.hook_resid_post"):
    f = {"sf": 1, "kind": "acts", "seq": seq, "hook": hook, "tokens": T(tokens, "i32")}
    rows, ctx = np.asarray(tokens).shape
    if acts is not None: f["acts"] = T(acts, "f32")
    if recon is not None: f["recon"] = T(recon, "f32")
    if keep is not None: f["keep"] = T(keep, "u8")
    if feats is not None: f["feats"] = csr(np.asarray(feats).reshape(rows * ctx, -1), np.asarray(feats).shape[-1])
    return f

def write_jsonl(frames, path):
    with open(path, "w") as fp:
        for f in frames:
            fp.write(json.dumps(f) + "\n")   # NaN/Infinity as Python writes them: sf-cat reads them

def pack(frames, path):
    """frames: list of dicts (header, data..., end) -> msgpack stream file via sf-cat --pack"""
    write_jsonl(frames, path + ".jsonl")
    with open(path + ".jsonl") as i, open(path, "wb") as o:
        subprocess.run(["sf-cat", "--pack"], stdin=i, stdout=o, check=True)

def stream(data_frames, **meta):
    rows = sum(np.asarray(f["tokens"]["shape"])[0] for f in data_frames)
    return [header(**meta)] + data_frames + [end(len(data_frames), int(rows))]

def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)

# ---------------- numpy references ----------------
def f64(a):
    return np.asarray(a, np.float32).astype(np.float64)

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

# ---------------- histogram edges, written out independently of the C code ----------------
def edges(name):
    if name == "cos": return np.round(np.arange(201) * 0.01 - 1.0, 12)
    if name in ("norm", "l2"): return np.concatenate([[0.0], 10.0 ** (-3 + 0.025 * np.arange(321))])
    if name == "act": return np.round(-10 + 0.05 * np.arange(301), 12)
    if name == "dens": return np.round(-10.05 + 0.1 * np.arange(103), 12)
    raise KeyError(name)

def hist_counts(values, name):
    e = edges(name)
    c, _ = np.histogram(np.asarray(values, np.float64), bins=e)
    return c

# ---------------- comparison ----------------
class Checker:
    def __init__(self):
        self.fails = 0
        self.n = 0

    def close(self, got, want, what, rtol=1e-9, atol=1e-12):
        self.n += 1
        if isinstance(got, list): g = np.asarray([np.nan if v is None else v for v in got], np.float64)
        elif got is None: g = np.asarray([np.nan])
        else: g = np.asarray(got, np.float64).ravel()
        w = np.asarray(want, np.float64).ravel()
        if g.shape != w.shape:
            print(f"FAIL {what}: shape {g.shape} vs {w.shape}"); self.fails += 1; return
        bad = ~((np.isnan(g) & np.isnan(w)) | (np.abs(g - w) <= atol + rtol * np.abs(w)))
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            print(f"FAIL {what}: [{i}] got {g[i]!r} want {w[i]!r} ({int(bad.sum())} differ)"); self.fails += 1

    def eq(self, got, want, what):
        self.n += 1
        if got != want:
            print(f"FAIL {what}: got {got!r} want {want!r}"); self.fails += 1

    def done(self):
        if self.fails:
            print(f"{self.fails} of {self.n} checks failed")
            raise SystemExit(1)
        print(f"ok: {self.n} checks")

# ---------------- safetensors (numpy, for the checkpoint tests) ----------------
def st_read(path):
    """{name: float64 array} of a safetensors file (F32/F16/BF16)"""
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out, base = {}, 8 + n
    for k, v in hdr.items():
        if k == "__metadata__": continue
        b = raw[base + v["data_offsets"][0]: base + v["data_offsets"][1]]
        if v["dtype"] == "F32": a = np.frombuffer(b, "<f4")
        elif v["dtype"] == "F16": a = np.frombuffer(b, "<f2").astype(np.float32)
        elif v["dtype"] == "BF16": a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
        else: continue
        out[k] = a.astype(np.float64).reshape(v["shape"])
    return out

def ckpt_read(d):
    import os
    p = os.path.join(d, "model.safetensors")
    if os.path.exists(p): return st_read(p)
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
    out = {}
    for f in sorted(set(idx.values())): out.update(st_read(os.path.join(d, f)))
    return out

def unembed_ref(d, gemma=False):
    """W_U (d_model, vocab): the final norm weight folded in, centred over the vocabulary"""
    w = ckpt_read(d)
    E = w.get("lm_head.weight", w.get("model.embed_tokens.weight"))
    g = w["model.norm.weight"] + (1.0 if gemma else 0.0)
    WU = g[:, None] * E.T
    return WU - WU.mean(1, keepdims=True)

def st_write(path, tensors, dtype="F32"):
    """tensors {name: array} -> safetensors (sorted names, F32 or BF16 rounded to nearest even)"""
    import struct
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(tensors):
        a = np.asarray(tensors[k], np.float32)
        if dtype == "BF16":
            u = a.view(np.uint32).astype(np.uint64)
            b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            b = a.astype("<f4").tobytes()
        hdr[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(h))); fp.write(h)
        for b in blobs: fp.write(b)

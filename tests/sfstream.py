"""sfstream - what the saeflow tests share: frames <-> numpy through sf-cat, safetensors,
SAELens SAE and Hugging Face checkpoint directories, running a stage, comparing numbers.
Nothing here runs saeflow's compute code; the numpy references the tests compare the stages
against are in oracles.py. tests/run puts tests/ on PYTHONPATH: `import sfstream as sf`.

Streams. A frame is a dict, the JSON line of SPEC section 3 ({"sf": 1, "kind": ...}); tensor()
and the *_frame() builders make them, pack() turns a list of them into a stream file with
`sf-cat --pack`. unpack() reads a stream back with `sf-cat`: every tensor becomes a float64
numpy array of the exact stored value (f32/f16/bf16 numbers, printed %.9g, are rounded back to
float32; integers are exact; null and NaN are NaN), a feats CSR map becomes {"d_sae",
"indptr", "index", "value"} arrays.

Command line (tests/cli cases and shell tests; "$PY" "$SF_ROOT/tests/sfstream.py" ...):
  sae DIR [JSON]       a small random SAE (d_in 8, d_sae 24, seed 1); JSON edits:
                       {"cfg": {...merged into cfg.json...}, "drop": [tensor names],
                        "shape": {name: [dims]} (replaced by zeros of that shape)}
  acts [JSON]          an acts stream as JSON lines on stdout (2 rows x 3 positions, d 8,
                       seed 2); JSON: {"hook", "d", "nan": [t], "no_acts": true, "no_meta": true}
  tiny DIR ARCH [SHARDS]  a small random checkpoint (llama, mistral, gemma; hidden 32,
                       4 heads x 8, 2 kv heads, d_ff 48, 2 layers, vocab 64)
  forward-check NAME   sf-forward on a fixture model (stories = stories260k and its two
                       finetunes, or tiny-*) vs reference/NAME.json: every hook and the CE;
                       exit 1 on a mismatch
  sae-eval SAE_DIR [MAX_TOKENS]   sf-cat JSON lines of acts frames on stdin -> "ev L0 mse n"
                       of the SAE on them (oracles.sae_metrics)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HOOK = "blocks.2.hook_resid_post"     # the fixture SAEs' hook
FX = os.environ.get("SF_FIXTURES", "")   # ../shared/fixtures (tests/run sets SF_FIXTURES)
FLOAT_DTYPES = ("f32", "f16", "bf16")
_CAST = {"f32": np.float32, "f16": np.float16, "bf16": np.float32,   # bf16: sf-cat --pack rounds
         "i32": np.int32, "u32": np.uint32, "u8": np.uint8}


# ---- frames ---------------------------------------------------------------------------------

def tensor(a, dtype):
    """{"dtype", "shape", "data"} of array a stored as dtype (f32 f16 bf16 i32 u32 u8). bf16
    data are written as float32 numbers, which sf-cat --pack rounds; NaN/inf as Python's json
    writes them (sf-cat reads them)."""
    a = np.asarray(a)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.astype(_CAST[dtype]).ravel().tolist()}


def csr(F):
    """dense (n_tok, d_sae) -> the CSR map of SPEC section 3 over the entries != 0"""
    F = np.asarray(F, np.float32)
    indptr, index, value = [0], [], []
    for row in F:
        nz = np.nonzero(row)[0]
        index += nz.tolist()
        value += row[nz].tolist()
        indptr.append(len(index))
    return {"d_sae": int(F.shape[1]), "indptr": tensor(indptr, "u32"),
            "index": tensor(np.array(index, np.int64), "u32"), "value": tensor(np.array(value, np.float32), "f32")}


def header(**meta):
    return {"sf": 1, "kind": "header", "meta": meta}


def end(frames, rows):
    return {"sf": 1, "kind": "end", "frames": frames, "rows": rows}


def tokens_frame(seq, tokens):
    return {"sf": 1, "kind": "tokens", "seq": seq, "tokens": tensor(tokens, "i32")}


def acts_frame(seq, tokens, acts=None, recon=None, keep=None, feats=None, hook=HOOK, dtype="f32"):
    """tokens [rows, ctx]; acts, recon [rows, ctx, d] as dtype; keep [rows, ctx];
    feats [rows, ctx, d_sae] dense (written as CSR)"""
    f = {"sf": 1, "kind": "acts", "seq": seq, "hook": hook, "tokens": tensor(tokens, "i32")}
    rows, ctx = np.shape(tokens)
    if acts is not None: f["acts"] = tensor(acts, dtype)
    if recon is not None: f["recon"] = tensor(recon, dtype)
    if keep is not None: f["keep"] = tensor(keep, "u8")
    if feats is not None: f["feats"] = csr(np.reshape(feats, (rows * ctx, -1)))
    return f


def stream(data_frames, **meta):
    """[header(**meta), data frames..., end] (rows counted from the tokens)"""
    rows = sum(f["tokens"]["shape"][0] for f in data_frames)
    return [header(**meta)] + data_frames + [end(len(data_frames), int(rows))]


def acts_stream(frames, hook=HOOK, dtype="f32", **meta):
    """frames: [(tokens, acts[, recon[, keep]]), ...] -> a stream of acts frames (seq 0, 1, ...)
    whose header meta is {"hook": hook, **meta}"""
    return stream([acts_frame(s, *f, hook=hook, dtype=dtype) for s, f in enumerate(frames)], hook=hook, **meta)


def jsonl(frames):
    return "".join(json.dumps(f) + "\n" for f in frames)


def pack(frames, path):
    """frames (dicts) -> a stream file, through sf-cat --pack"""
    subprocess.run(["sf-cat", "--pack", "-o", path], input=jsonl(frames).encode(), check=True)


def _array(t, dtype):
    a = np.array([np.nan if e is None else e for e in t["data"]], np.float64).reshape(t["shape"])
    return a.astype(np.float32).astype(np.float64) if dtype in FLOAT_DTYPES else a


def parse(lines):
    """sf-cat JSON lines -> frames, tensors as numpy arrays (see the module's docstring)"""
    frames = []
    for line in lines:
        fr = json.loads(line)
        for key, v in list(fr.items()):
            if isinstance(v, dict) and "dtype" in v and "data" in v:
                fr[key] = _array(v, v["dtype"])
            elif isinstance(v, dict) and "indptr" in v:
                fr[key] = {"d_sae": v["d_sae"], "indptr": _array(v["indptr"], "").astype(np.int64),
                           "index": _array(v["index"], "").astype(np.int64), "value": _array(v["value"], "f32")}
        frames.append(fr)
    return frames


def unpack(path):
    """the frames of a stream file (sf-cat), tensors as numpy arrays"""
    out = subprocess.run(["sf-cat", "-i", path], capture_output=True, check=True).stdout.decode()
    return parse(out.splitlines())


def csr_dense(sp):
    """an unpacked feats map -> dense (n_tok, d_sae) float64"""
    n = len(sp["indptr"]) - 1
    f = np.zeros((n, sp["d_sae"]))
    for t in range(n):
        a, b = sp["indptr"][t], sp["indptr"][t + 1]
        f[t, sp["index"][a:b]] = sp["value"][a:b]
    return f


# ---- safetensors ----------------------------------------------------------------------------

def bf16_bits(a):
    """float32 -> bf16 bit patterns (uint16), rounded to nearest even"""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def as_stored(a, dtype):
    """the float32 values of a after a round trip through dtype (F32, F16, BF16)"""
    a = np.asarray(a, np.float32)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return (bf16_bits(a).astype(np.uint32) << 16).view(np.float32)
    return a


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: name -> float array, all written as dtype (F32, F16, BF16), names sorted,
    {"format": "pt"} metadata, header padded with spaces to a multiple of 8"""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            b = bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path, strict=False, dtypes=("F32", "F16", "BF16")):
    """name -> float64 array of the tensors whose dtype is in dtypes (others are left out).
    strict: assert instead that every tensor is of dtypes and that the file has saeflow's
    writer layout (header length a multiple of 8, {"format": "pt"} metadata, names sorted,
    data contiguous in that order, no trailing bytes)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    base = 8 + n
    names = [k for k in hdr if k != "__metadata__"]
    if strict:
        assert n % 8 == 0, f"{path}: header length {n} not a multiple of 8"
        assert hdr.get("__metadata__") == {"format": "pt"}, f"{path}: metadata {hdr.get('__metadata__')}"
        assert names == sorted(names), f"{path}: tensors not sorted: {names}"
    out, off = {}, 0
    for k in names:
        v = hdr[k]
        s, e = v["data_offsets"]
        if strict:
            assert s == off, f"{path}: {k} not contiguous"
            assert v["dtype"] in dtypes, f"{path}: {k} is {v['dtype']}, not one of {dtypes}"
        off = e
        if v["dtype"] not in dtypes:
            continue
        buf = raw[base + s:base + e]
        if v["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4")
        elif v["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2")
        else:
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        out[k] = a.astype(np.float64).reshape(v["shape"])
    if strict:
        assert base + off == len(raw), f"{path}: trailing bytes"
    return out


# ---- SAE and checkpoint directories, fixtures ------------------------------------------------

def reference(name="stories260k"):
    """the fixtures' reference/NAME.json"""
    return json.load(open(f"{FX}/reference/{name}.json"))



def write_sae(d, cfg, tensors, dtype="F32"):
    """a SAELens directory: cfg.json + sae_weights.safetensors"""
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/cfg.json", "w") as f:
        json.dump(cfg, f)
    write_safetensors(f"{d}/sae_weights.safetensors", tensors, dtype)


def random_sae(rng, d_in, d_sae, arch="standard", scale=1.0):
    """random float32 weights of an architecture (standard, gated, jumprelu)"""
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


def read_sae(d, strict=False, dtypes=("F32", "F16", "BF16")):
    """(cfg.json dict, weights as float64) of a SAELens directory"""
    return json.load(open(f"{d}/cfg.json")), read_safetensors(f"{d}/sae_weights.safetensors", strict, dtypes)


def read_checkpoint(d):
    """every tensor of a Hugging Face checkpoint directory (one file or sharded), float64"""
    if os.path.exists(f"{d}/model.safetensors"):
        return read_safetensors(f"{d}/model.safetensors")
    out = {}
    for f in sorted(set(json.load(open(f"{d}/model.safetensors.index.json"))["weight_map"].values())):
        out.update(read_safetensors(f"{d}/{f}"))
    return out


def write_tiny(d, arch, shards=1, dtype=None, seed=0, **over):
    """a small random HF checkpoint (config.json + safetensors, optionally sharded); over:
    config.json keys to change. dtype: default BF16, F16 when sharded."""
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


# ---- running stages -------------------------------------------------------------------------

def run_json(args, **kw):
    """run a command that writes JSON on stdout (sf-reduce); exit the test if it fails"""
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)


def forward(args, inp, out):
    """sf-forward -q -i INP -o OUT ARGS...; the frames it wrote (unpack)"""
    r = subprocess.run(["sf-forward", "-q", "-i", inp, "-o", out] + args, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"sf-forward {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()}")
    return unpack(out)


# ---- comparing ------------------------------------------------------------------------------

def rel(a, b):
    """max|a - b| / max|b|"""
    b = np.asarray(b, np.float64)
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


class Checker:
    """counts checks and failures; each failure prints a FAIL line; done() exits 1 on any"""
    def __init__(self):
        self.fails = 0
        self.n = 0

    def close(self, got, want, what, rtol=1e-9, atol=1e-12):
        """|got - want| <= atol + rtol |want| everywhere, NaN (or null in got) matching NaN"""
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


# ---- sf-forward against the fixtures' references (forward-check) ------------------------------

TOL_HOOK = 2e-5      # max|ours - ref| / max|ref| per hook tensor
TOL_CE = 2e-5        # the same, per CE tensor


def _check_model(model_dir, tok, hooks, ce_ref, tag, scratch):
    """every hook of the reference and the loss; returns a list of failure strings"""
    fails = []
    pack(stream([tokens_frame(0, tok)]), f"{scratch}/tok.sf")
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
        pack(acts_stream([(tok, got[name])], name), f"{scratch}/in.sf")
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


def forward_check(what):
    """forward-check NAME: 0 when every check passes, else 1"""
    scratch = tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/tmp"))
    fails = []
    if what.startswith("tiny-"):
        ref = reference(what)
        tok = np.array(ref["tokens"], np.int32)
        fails += _check_model(f"{FX}/models/{what}", tok, ref["hooks"], ref["ce_per_token"], what, scratch)
    else:
        ref = reference()
        tok = np.array(ref["tokens"], np.int32)
        for m in ("stories260k", "stories260k-ft-mild", "stories260k-ft-code"):
            r = ref["models"][m]
            fails += _check_model(f"{FX}/models/{m}", tok, r["hooks"], r["ce_per_token"], m, scratch)
    for f in fails:
        print("FAIL:", f)
    return 1 if fails else 0


# ---- command line ---------------------------------------------------------------------------

def _cli_sae(d, edits):
    t = random_sae(np.random.default_rng(1), 8, 24)
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 24, "hook_name": HOOK,
           "activation_fn_str": "relu", "apply_b_dec_to_input": True, "normalize_activations": "none"}
    cfg.update(edits.get("cfg", {}))
    for n in edits.get("drop", []):
        t.pop(n, None)
    for n, shp in edits.get("shape", {}).items():
        t[n] = np.zeros(shp, np.float32)
    write_sae(d, cfg, t)


def _cli_acts(o):
    d = o.get("d", 8)
    x = np.random.default_rng(2).normal(0, 1, (2, 3, d)).astype(np.float32)
    for t in o.get("nan", []):
        x.reshape(-1, d)[t, 0] = np.nan
    frames = acts_stream([(np.arange(6, dtype=np.int32).reshape(2, 3), x)], o.get("hook", HOOK), d_model=d)
    if o.get("no_meta"):   # header without hook / d_model: the frames are checked instead
        frames[0] = header()
    if o.get("no_acts"):
        del frames[1]["acts"]
    print(jsonl(frames), end="")


def _cli_sae_eval(d, limit):
    import oracles
    xs, n = [], 0
    for fr in parse(sys.stdin):
        if fr["kind"] != "acts" or n >= limit:
            continue
        xs.append(fr["acts"].reshape(-1, fr["acts"].shape[-1]))
        n += len(xs[-1])
    x = np.concatenate(xs)[:limit]
    cfg, t = read_sae(d, strict=True, dtypes=("F32",))
    ev, l0, mse = oracles.sae_metrics(cfg, t, x)
    print(f"{ev:.6f} {l0:.4f} {mse:.6f} {len(x)}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "sae":
        _cli_sae(args[0], json.loads(args[1]) if len(args) > 1 else {})
    elif cmd == "acts":
        _cli_acts(json.loads(args[0]) if args else {})
    elif cmd == "tiny":
        write_tiny(args[0], args[1], int(args[2]) if len(args) > 2 else 1)
    elif cmd == "forward-check":
        return forward_check(args[0])
    elif cmd == "sae-eval":
        _cli_sae_eval(args[0], int(args[1]) if len(args) > 1 else 1 << 30)
    else:
        raise SystemExit(f"sfstream.py: unknown command {cmd!r} (see its docstring)")
    return 0


# ---- result documents ----
DOC_SKIP = {"throughput", "provenance", "seconds", "shard"}


def compare_docs(a, b, tol=1e-12, skip=DOC_SKIP):
    """Every number of two JSON documents (sf-reduce, transfer.sh, sweep.sh results) within tol
    relative, the same keys (keys in skip aside, at any depth), strings and array lengths.
    Returns (numbers compared, worst relative difference, [differences as text])."""
    bad, n, worst = [], [0], [0.0]

    def cmp(x, y, path):
        if isinstance(x, dict):
            if not isinstance(y, dict):
                bad.append(path + ": type"); return
            kx = sorted(k for k in x if k not in skip); ky = sorted(k for k in y if k not in skip)
            if kx != ky:
                bad.append(f"{path}: keys {set(kx) ^ set(ky)}"); return
            for k in kx: cmp(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list):
            if not isinstance(y, list) or len(x) != len(y):
                bad.append(path + ": length"); return
            for i, (u, v) in enumerate(zip(x, y)): cmp(u, v, f"{path}[{i}]")
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and isinstance(y, (int, float)):
            n[0] += 1
            d = abs(x - y); m = max(abs(x), abs(y))
            r = d / m if m else 0.0
            worst[0] = max(worst[0], r)
            if d > tol * m: bad.append(f"{path}: {x!r} vs {y!r} (rel {r:.3g})")
        elif x != y:
            bad.append(f"{path}: {x!r} vs {y!r}")
    cmp(a, b, "")
    return n[0], worst[0], bad


# ---- reports ----
def xml_problems(path):
    """xmllint on every <svg> of the HTML report at path (well-formed XML) and on the whole page
    (xmllint --html: balanced tags). The problems found, as text."""
    import re
    page, fail = open(path).read(), []
    for i, s in enumerate(re.findall(r"<svg\b.*?</svg>", page, re.S)):
        p = subprocess.run(["xmllint", "--noout", "-"], input=s.encode(), capture_output=True)
        if p.returncode: fail.append("svg %d not well-formed: %s" % (i, p.stderr.decode()[:200]))
    p = subprocess.run(["xmllint", "--html", "--noout", path], capture_output=True)
    if p.returncode: fail.append("xmllint --html: " + p.stderr.decode()[:300])
    return fail


if __name__ == "__main__":
    sys.exit(main(sys.argv))

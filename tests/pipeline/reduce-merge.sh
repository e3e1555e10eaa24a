#!/usr/bin/env bash
# sf-reduce --merge: a stream split in 3 shards, each reduced on its own, merged, equals the
# one-pass JSON (every number within 1e-9 relative, same keys, same arrays; timing and
# provenance aside), for one model (acts+feats+recon+keep, loss, sim inputs) and for the
# two-stream transfer study; merging is associative (merge of a merge).
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import json, subprocess
import numpy as np
import sfstream as sf
rng = np.random.default_rng(3)
D, S, CTX, NF = 8, 24, 6, 6
def model_frames(shift):
    out = []
    for s in range(NF):
        rows = 1 + s % 3; n = rows * CTX
        X = (rng.normal(shift, 1, (n, D)) + np.arange(D)).astype(np.float32)
        Y = (X + rng.normal(0, 0.2, (n, D))).astype(np.float32)
        F = np.where(rng.random((n, S)) < 0.2, rng.exponential(1, (n, S)), 0).astype(np.float32)
        F[:, 0] = 0
        keep = (rng.random(n) > 0.1).astype(np.uint8)
        out.append((rng.integers(0, 50, (rows, CTX)), X.reshape(rows, CTX, D), Y.reshape(rows, CTX, D), keep.reshape(rows, CTX), F.reshape(rows, CTX, S)))
    return out
base, ft = model_frames(0.0), model_frames(0.5)
for i in range(NF):
    ft[i] = (base[i][0],) + ft[i][1:]     # same tokens
def acts(fr, lo, hi):
    return sf.stream([sf.acts_frame(s - lo, *fr[s], hook="blocks.0.hook_resid_post") for s in range(lo, hi)], model="m", hook="blocks.1.hook_resid_post")
def loss(fr, lo, hi):
    out = []
    for s in range(lo, hi):
        t = fr[s][0]; r = t.shape[0]
        g = np.random.default_rng(100 + s)    # the same values whichever shard holds frame s
        ce = g.uniform(1, 4, (r, CTX - 1)).astype(np.float32)
        if s == 2: ce[0, 1] = np.nan          # one non-finite value, counted in nan_counts
        out.append({"sf": 1, "kind": "loss", "seq": s - lo, "tokens": sf.tensor(t, "i32"), "ce_clean": sf.tensor(ce, "f32"),
                    "ce_spliced": sf.tensor(ce * 1.1, "f32"), "ce_ablated": sf.tensor(ce * 2, "f32"), "kl_spliced": sf.tensor(ce / 10, "f32")})
    return sf.stream(out)
def sim(fr, lo, hi):
    out = []
    for s in range(lo, hi):
        t = fr[s][0]
        g = np.random.default_rng(200 + s)
        out.append({"sf": 1, "kind": "sim", "seq": s - lo, "tokens": sf.tensor(t, "i32"),
                    "cos": sf.tensor(g.uniform(-1, 1, t.shape), "f32"), "l2": sf.tensor(g.exponential(3, t.shape), "f32")})
    return sf.stream(out)
cuts = [(0, 2), (2, 5), (5, 6)]
for name, fn, fr in (("a", acts, base), ("l", loss, base), ("s", sim, base), ("fa", acts, ft)):
    sf.pack(fn(fr, 0, NF), f"{name}-all.sf")
    for k, (lo, hi) in enumerate(cuts):
        sf.pack(fn(fr, lo, hi), f"{name}-{k}.sf")

SKIP = {"throughput", "provenance", "seconds"}
def cmp(a, b, path, c):
    if isinstance(a, dict):
        c.eq(sorted(k for k in a if k not in SKIP), sorted(k for k in b if k not in SKIP), path + " keys")
        for k in a:
            if k not in SKIP and k in b: cmp(a[k], b[k], f"{path}.{k}", c)
    elif isinstance(a, list) and a and isinstance(a[0], (dict, list, str)):
        c.eq(len(a), len(b), path + " length")
        for i, (x, y) in enumerate(zip(a, b)): cmp(x, y, f"{path}[{i}]", c)
    elif isinstance(a, (list, int, float)) or a is None:
        c.close(b, a, path, rtol=1e-9, atol=1e-300)
    else:
        c.eq(b, a, path)

c = sf.Checker()
def one(args, out):
    subprocess.run(["sf-reduce", *args, "-o", out], check=True)
    return json.load(open(out))
# one model, three kinds of input
whole = one(["-i", "a-all.sf", "-i", "l-all.sf", "-i", "s-all.sf"], "whole.json")
for k in range(3): one(["-i", f"a-{k}.sf", "-i", f"l-{k}.sf", "-i", f"s-{k}.sf"], f"p{k}.json")
merged = one(["--merge", "p0.json", "p1.json", "p2.json"], "merged.json")
cmp(whole, merged, "model", c)
c.eq(merged["nan_counts"]["model.ce_clean"]["count"], 1, "nan count survives the merge")
c.eq(len(merged["provenance"]["inputs"]), 9, "provenance keeps every shard's inputs")
one(["--merge", "p0.json", "p1.json"], "p01.json")
cmp(whole, one(["--merge", "p01.json", "p2.json"], "m2.json"), "merge of merge", c)
# the transfer study
whole = one(["--base", "a-all.sf", "--finetune", "fa-all.sf"], "twhole.json")
for k in range(3): one(["--base", f"a-{k}.sf", "--finetune", f"fa-{k}.sf"], f"t{k}.json")
cmp(whole, one(["--merge", "t0.json", "t1.json", "t2.json"], "tmerged.json"), "transfer", c)
for key in ("base", "finetune", "transfer", "similarity"): c.eq(key in whole, True, f"{key} present")
# mixing kinds is refused
p = subprocess.run(["sf-reduce", "--merge", "p0.json", "t1.json"], capture_output=True, text=True)
c.eq(p.returncode, 1, "merging a one-model and a two-model result exits 1")
c.done()
EOF

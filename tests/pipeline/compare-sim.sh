#!/usr/bin/env bash
# sf-compare: per-token cos (norms floored at 1e-12: a zero vector gives 0) and l2 of two acts
# streams against numpy float64 (f32 and bf16 inputs); sf-compare | sf-reduce gives the
# similarity block numpy computes (means, by position, by row, histograms); tokens that differ
# exit 1 naming seq/row/position; streams of different lengths exit 1; a truncated input exits 3.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import json, subprocess
import numpy as np
import oracles
import sfstream as sf
rng = np.random.default_rng(9)
R, C, D = 2, 7, 16
tok = rng.integers(0, 1000, (3, R, C))
A = rng.normal(0, 1, (3, R, C, D)).astype(np.float32)
B = (A + rng.normal(0, 0.8, A.shape)).astype(np.float32)
B[1, 0, 3] = 0                                       # zero vector: cos 0, not NaN
def acts(T, X, n=3, dtype="f32", **meta):            # n frames of tokens T and activations X
    return sf.stream([sf.acts_frame(s, T[s], X[s], hook="blocks.0.hook_resid_post", dtype=dtype) for s in range(n)], **meta)
sf.pack(acts(tok, A, model="base"), "a.sf")
sf.pack(acts(tok, B, model="ft"), "b.sf")
c = sf.Checker()
subprocess.run(["sf-compare", "--base", "a.sf", "--finetune", "b.sf", "-o", "sim.sf"], check=True)
lines = [json.loads(l) for l in subprocess.run(["sf-cat", "-i", "sim.sf"], capture_output=True, text=True, check=True).stdout.splitlines()]
c.eq([l["kind"] for l in lines], ["header", "sim", "sim", "sim", "end"], "frame kinds")
c.eq(lines[0]["meta"]["finetune_model"], "ft", "header: finetune_model")
c.eq(lines[0]["meta"]["stages"][-1]["name"], "sf-compare", "header: stage recorded")
cos, l2 = oracles.sim_ref(A.reshape(-1, C, D), B.reshape(-1, C, D))
gc = np.concatenate([np.array(l["cos"]["data"]) for l in lines[1:4]])
gl = np.concatenate([np.array(l["l2"]["data"]) for l in lines[1:4]])
c.close(gc, cos.ravel(), "cos per token", rtol=1e-6, atol=1e-7)
c.close(gl, l2.ravel(), "l2 per token", rtol=1e-6)
c.eq(float(gc[1 * R * C + 3]), 0.0, "zero vector -> cos 0")
c.eq([l["tokens"]["data"] for l in lines[1:4]], [t.ravel().tolist() for t in tok], "tokens passed on")
c.eq(lines[1]["cos"]["shape"], [R, C], "cos shape [rows, ctx]")
got = sf.run_json(["sf-reduce", "-i", "sim.sf"])
s = got["similarity"]
c32 = cos.astype(np.float32).astype(np.float64); l32 = l2.astype(np.float32).astype(np.float64)
c.close(s["cos_mean"], c32.mean(), "cos_mean"); c.close(s["l2_mean"], l32.mean(), "l2_mean")
c.close(s["cos_by_position"], c32.mean(0), "cos_by_position"); c.close(s["l2_by_position"], l32.mean(0), "l2_by_position")
c.close(s["cos_by_row"], c32.mean(1), "cos_by_row"); c.close(s["l2_by_row"], l32.mean(1), "l2_by_row")
c.eq(s["cos_hist"]["counts"], oracles.hist_counts(c32, "cos").tolist(), "cos_hist")
c.eq(s["l2_hist"]["counts"], oracles.hist_counts(l32, "l2").tolist(), "l2_hist")
c.close(s["cos_hist"]["edges"], oracles.edges("cos"), "cos_hist edges", rtol=1e-12)
c.close(s["l2_hist"]["edges"], oracles.edges("l2"), "l2_hist edges", rtol=1e-12)
# bf16 activations: same as numpy on the bf16-rounded values
sf.pack(acts(tok, A, dtype="bf16"), "a16.sf")                # sf-cat --pack rounds the numbers to bf16
subprocess.run(["sf-compare", "--base", "a16.sf", "--finetune", "b.sf", "-o", "sim16.sf"], check=True)
l16 = [json.loads(l) for l in subprocess.run(["sf-cat", "-i", "sim16.sf"], capture_output=True, text=True, check=True).stdout.splitlines()]
cos16, _ = oracles.sim_ref(sf.as_stored(A, "BF16").reshape(-1, C, D), B.reshape(-1, C, D))
c.close(np.concatenate([np.array(l["cos"]["data"]) for l in l16[1:4]]), cos16.ravel(), "cos from bf16 acts", rtol=1e-6, atol=1e-7)
# errors
tok2 = tok.copy(); tok2[2, 1, 4] += 1
sf.pack(acts(tok2, B), "bad.sf")
p = subprocess.run(["sf-compare", "--base", "a.sf", "--finetune", "bad.sf", "-o", "x.sf"], capture_output=True, text=True)
c.eq(p.returncode, 1, "different tokens: exit 1")
c.eq("seq 2 row 1 position 4" in p.stderr, True, "names seq/row/position: " + p.stderr.strip())
sf.pack(acts(tok, B, n=2), "short.sf")
p = subprocess.run(["sf-compare", "--base", "a.sf", "--finetune", "short.sf", "-o", "x.sf"], capture_output=True, text=True)
c.eq(p.returncode, 1, "different lengths: exit 1")
import os   # a file output is whole or absent (PROTOCOL.md §1 Outputs); down a pipe it is truncated
c.eq(os.path.exists("x.sf"), False, "failed compare leaves no output file")
p = subprocess.run("sf-compare --base a.sf --finetune short.sf | sf-cat --summary", shell=True, capture_output=True, text=True)
c.eq(p.returncode, 3, "failed compare leaves a truncated stream down a pipe")
data = open("b.sf", "rb").read()
open("trunc.sf", "wb").write(data[: len(data) - 40])
p = subprocess.run(["sf-compare", "--base", "a.sf", "--finetune", "trunc.sf", "-o", "x.sf"], capture_output=True, text=True)
c.eq(p.returncode, 3, "truncated input: exit 3")
# sf-reduce --base/--finetune gives the same similarity as sf-compare | sf-reduce
pair = sf.run_json(["sf-reduce", "--base", "a.sf", "--finetune", "b.sf"])["similarity"]
for k in ("cos_mean", "l2_mean", "cos_by_row", "l2_by_position"): c.close(pair[k], s[k], f"paired reduce == compare|reduce: {k}", rtol=1e-12)
c.done()
EOF

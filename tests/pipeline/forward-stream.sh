#!/usr/bin/env bash
# sf-forward as a stream filter, on small random checkpoints written here (no fixtures needed),
# checked against the numpy float64 forward of tests/oracles.py: Llama f32 (weights used in place),
# Mistral bf16 with a window (4) shorter than ctx, Gemma with 2 kv heads, a 2-shard f16 Llama;
# several frames of different shapes; --out-dtype bf16/f16 (= rounding of the f32 acts);
# --cache-mb 0 (per-frame conversion) bit-identical to the cached weights; keys and unknown frame
# kinds carried; header meta (model, hook, d_model, upstream keys, stages) and end meta
# (seconds.sf-forward, nonfinite counts, upstream counts carried); NaN acts counted, not dropped.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'PYEOF' || exit 1
import os, sys
import numpy as np
import oracles
import sfstream as sf
fails = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok: fails.append(what)

rng = np.random.default_rng(1)
sf.write_tiny("llama32", "llama", dtype="F32", seed=1)
sf.write_tiny("mistral", "mistral", seed=2)
sf.write_tiny("gemma", "gemma", seed=3, num_key_value_heads=2, head_dim=16, hidden_act="gelu")
sf.write_tiny("sharded", "llama", shards=2, seed=4, rope_theta=500000.0)
frames = [rng.integers(0, 64, (2, 9)).astype(np.int32), rng.integers(0, 64, (3, 5)).astype(np.int32),
          rng.integers(0, 64, (1, 12)).astype(np.int32)]
lines = [{"sf": 1, "kind": "header", "meta": {"ctx": 9, "total_rows": 6, "tokenizer": "x"}}]
for i, t in enumerate(frames):
    lines.append({"sf": 1, "kind": "tokens", "seq": len(lines) - 1, "tokens": sf.tensor(t, "i32"), "doc": i})
    if i == 0:
        lines.append({"sf": 1, "kind": "note", "seq": len(lines) - 1, "text": "hello"})
lines.append({"sf": 1, "kind": "end", "frames": 4, "rows": 6, "meta": {"upstream_count": 7}})
sf.pack(lines, "tok.sf")

for name in ("llama32", "mistral", "gemma", "sharded"):
    m = oracles.NpModel(name)
    for hook, layer, post in (("blocks.0.hook_resid_pre", 0, False), ("blocks.1.hook_resid_post", 1, True)):
        fr = sf.forward(["--model", name, "--hook", hook], "tok.sf", "acts.sf")
        acts = [f for f in fr if f["kind"] == "acts"]
        worst = 0.0
        for t, f in zip(frames, acts):
            E = m.w["model.embed_tokens.weight"][t] * (np.float32(np.sqrt(m.d)) if m.gemma else 1)
            for l in range(layer + post):
                E = m.block(E, l)
            worst = max(worst, sf.rel(f["acts"], E))
            check(np.array_equal(f["tokens"], t) and f["hook"] == hook, f"{name} {hook}: tokens and hook")
        check(len(acts) == 3 and worst <= 2e-5, f"{name} {hook}: 3 frames, rel err {worst:.3g}")
        kinds = [f["kind"] for f in fr]
        check(kinds == ["header", "acts", "note", "acts", "acts", "end"], f"{name}: frame kinds {kinds}")
        check([f.get("doc") for f in acts] == [0, 1, 2], f"{name}: keys carried")
        meta = fr[0]["meta"]
        check(meta.get("model") == name and meta.get("hook") == hook and meta.get("d_model") == 32 and
              meta.get("ctx") == 9 and meta.get("tokenizer") == "x" and meta["stages"][-1]["name"] == "sf-forward",
              f"{name}: header meta {meta}")
        em = fr[-1].get("meta", {})
        check(fr[-1]["rows"] == 6 and fr[-1]["frames"] == 4 and em.get("upstream_count") == 7 and
              em.get("nonfinite_tokens") == 0 and em.get("seconds.sf-forward", -1) >= 0, f"{name}: end frame {fr[-1]}")

# --out-dtype, --cache-mb 0
ref = [f["acts"] for f in sf.forward(["--model", "mistral", "--hook", "blocks.1.hook_resid_post"], "tok.sf", "a.sf") if f["kind"] == "acts"]
nc = [f["acts"] for f in sf.forward(["--model", "mistral", "--hook", "blocks.1.hook_resid_post", "--cache-mb", "0"], "tok.sf", "a.sf") if f["kind"] == "acts"]
check(all(np.array_equal(a, b) for a, b in zip(ref, nc)), "--cache-mb 0 gives the same acts bit for bit")
for dt in ("f16", "bf16"):
    fr = sf.forward(["--model", "mistral", "--hook", "blocks.1.hook_resid_post", "--out-dtype", dt], "tok.sf", "a.sf")
    out = [f["acts"] for f in fr if f["kind"] == "acts"]
    dts = os.popen("sf-cat -i a.sf --summary").read()
    want = [sf.as_stored(a, dt.upper()).astype(np.float64) for a in ref]
    check(all(np.array_equal(a, b) for a, b in zip(out, want)) and f"{dt}[" in dts, f"--out-dtype {dt}: rounded f32 acts")

# --threads 2 (element-wise kernels and the loss statistics split over threads) = --threads 1
t2 = [f for f in sf.forward(["--model", "gemma", "--hook", "blocks.1.hook_resid_post", "--threads", "2"], "tok.sf", "a.sf") if f["kind"] == "acts"]
t1 = [f for f in sf.forward(["--model", "gemma", "--hook", "blocks.1.hook_resid_post", "--threads", "1"], "tok.sf", "a.sf") if f["kind"] == "acts"]
check(all(sf.rel(a["acts"], b["acts"]) <= 1e-6 for a, b in zip(t1, t2)), "--threads 2: same acts")
x2 = rng.normal(0, 1, (3, 40, 32)).astype(np.float32)
t40 = rng.integers(0, 64, (3, 40)).astype(np.int32)
sf.pack(sf.acts_stream([(t40, x2, x2 * 0.8)], "blocks.1.hook_resid_pre"), "in.sf")
l = {n: [f for f in sf.forward(["--model", "gemma", "--from", "blocks.1.hook_resid_pre", "--loss", "--ablate", "--threads", n], "in.sf", "l.sf") if f["kind"] == "loss"][0] for n in ("1", "2")}
# (OpenBLAS' 2-thread sgemm rounds differently: CE ~60 here moves by ~2e-5)
check(all(np.abs(l["1"][k] - l["2"][k]).max() <= 1e-4 for k in ("ce_clean", "ce_spliced", "kl_spliced", "ce_ablated", "kl_ablated")), "--threads 2: same loss within 1e-4")

# a frame big enough that every element-wise kernel really splits over 2 threads (ctx 600:
# softmax row pairs; 4800 tokens: norms, RoPE, GLU, loss statistics), vs numpy
tb = rng.integers(0, 64, (8, 600)).astype(np.int32)
sf.pack(sf.stream([sf.tokens_frame(0, tb)]), "big.sf")
m = oracles.NpModel("gemma")
E = m.w["model.embed_tokens.weight"][tb] * np.float32(np.sqrt(m.d))
want = m.block(m.block(E, 0), 1)
for n in ("1", "2"):
    got = [f for f in sf.forward(["--model", "gemma", "--hook", "blocks.1.hook_resid_post", "--threads", n], "big.sf", "a.sf") if f["kind"] == "acts"][0]
    check(sf.rel(got["acts"], want) <= 2e-5, f"8x600 tokens, --threads {n}: rel err {sf.rel(got['acts'], want):.3g}")
hb = m.block(E, 0).astype(np.float32)
rb = (hb * 0.7).astype(np.float32)
sf.pack(sf.acts_stream([(tb, hb, rb)], "blocks.0.hook_resid_post"), "in.sf")
lpc, lps = m.logprobs(hb.astype(np.float64), 1), m.logprobs(rb.astype(np.float64), 1)
lf = [f for f in sf.forward(["--model", "gemma", "--from", "blocks.0.hook_resid_post", "--loss", "--threads", "2"], "in.sf", "l.sf") if f["kind"] == "loss"][0]
e_ce = max(float(np.abs(lf["ce_clean"] - oracles.ce(lpc, tb)).max()), float(np.abs(lf["ce_spliced"] - oracles.ce(lps, tb)).max()))
e_kl = float(np.abs(lf["kl_spliced"] - oracles.kl(lpc, lps)).max())
check(e_ce <= 1e-4 and e_kl <= 1e-4, f"8x600 tokens loss, --threads 2: CE abs err {e_ce:.3g}, KL abs err {e_kl:.3g}")

# NaN acts in --from mode: counted per loss key, warned about, the values are NaN
t = frames[0]
x = rng.normal(0, 1, (2, 9, 32)).astype(np.float32)
x[1, 3, 5] = np.nan
sf.pack(sf.acts_stream([(t, x, x)], "blocks.1.hook_resid_pre"), "in.sf")
import subprocess
r = subprocess.run(["sf-forward", "--model", "sharded", "--from", "blocks.1.hook_resid_pre", "--loss", "-i", "in.sf", "-o", "loss.sf"], capture_output=True)
fr = sf.unpack("loss.sf")
lf, em = fr[1], fr[-1]["meta"]
n_nan = int(np.isnan(lf["ce_clean"]).sum())
check(r.returncode == 0 and n_nan >= 1 and em.get("nonfinite_ce_clean") == n_nan and em.get("nonfinite_tokens") == 1 and
      em.get("nonfinite_kl_spliced") == int(np.isnan(lf["kl_spliced"]).sum()) and b"not finite" in r.stderr,
      f"NaN acts: {n_nan} NaN CE values, end meta {em}, stderr {r.stderr.decode().strip()!r}")
check(np.isfinite(lf["ce_clean"][0]).all(), "NaN acts: the other row is finite")
print("failed:", fails) if fails else None
sys.exit(1 if fails else 0)
PYEOF

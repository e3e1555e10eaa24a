#!/usr/bin/env bash
# sf-outliers: the keep mask, --report lines, header and end meta of each rule (--max-norm,
# --norm-scalar/--multiplier, --estimate/--multiplier incl. a mid-frame N, a NaN token, N past
# the end of the stream) against norms and thresholds computed by numpy in this test; and on the
# stories260k reference activations (fixtures) with a threshold worked out here.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import json, os, subprocess, sys
import numpy as np
import sfstream as sf

D = 16
rng = np.random.default_rng(5)
frames = []
for f in range(3):
    a = rng.normal(0, 1, (2, 4, D)).astype(np.float32)
    a *= rng.choice([1.0, 1.0, 1.0, 3.0], size=(2, 4, 1)).astype(np.float32)   # some big tokens
    frames.append((rng.integers(3, 500, (2, 4)).astype(np.int32), a))
frames[0][1][0, 3, 5] = np.nan    # token 3 of the stream: non-finite
x = np.concatenate([a.reshape(-1, D) for _, a in frames]).astype(np.float64)
tok = np.concatenate([t.reshape(-1) for t, _ in frames])
norm = np.sqrt((x * x).sum(1))      # NaN for token 3
fin = np.isfinite(norm)
stream = sf.acts_stream(frames, hook="blocks.1.hook_resid_post", d_model=D)
# a tokens frame after the acts frames passes through untouched
stream[-1:] = [sf.tokens_frame(3, [[7, 8, 9, 10]]), sf.end(4, 7)]
sf.pack(stream, "acts.sf")

def run(args, src="acts.sf"):
    p = subprocess.run(["sf-outliers", *args, "-i", src, "-o", "out.sf", "--report", "rep.jsonl"],
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"sf-outliers {args}: exit {p.returncode}: {p.stderr}")
    fr = sf.unpack("out.sf")
    rep = [json.loads(l) for l in open("rep.jsonl")]
    return fr, rep, p.stderr

def mid_threshold(v, q):
    """a threshold halfway between two neighbouring finite norms (no rounding ambiguity)"""
    s = np.sort(v[np.isfinite(v)])
    i = int(q * (len(s) - 1))
    return (s[i] + s[i + 1]) / 2

fail = 0
def check(name, fr, rep, outlier, meta_want):
    global fail
    data = [f for f in fr if f["kind"] == "acts"]
    keep = np.concatenate([d["keep"].reshape(-1) for d in data])
    acts = np.concatenate([d["acts"].reshape(-1, D) for d in data])
    want_rep = [{"seq": int(t // 8), "row": int(t % 8 // 4), "position": int(t % 4), "token": int(tok[t]),
                 "norm": (None if not fin[t] else norm[t])} for t in np.nonzero(outlier)[0]]
    rep_ok = len(rep) == len(want_rep) and all(
        all(r[k] == w[k] for k in ("seq", "row", "position", "token")) and
        ((r["norm"] is None and w["norm"] is None) or abs(r["norm"] - w["norm"]) <= 1e-6 * w["norm"])
        for r, w in zip(rep, want_rep))
    hdr, end = fr[0]["meta"], fr[-1]["meta"]
    hdr.setdefault("d_model", D)
    meta_ok = all(abs(hdr[k] - v) <= 1e-9 * abs(v) if isinstance(v, float) else hdr[k] == v for k, v in meta_want.items())
    end_ok = end["outliers"] == outlier.sum() and abs(end["outlier_fraction"] - outlier.mean()) < 1e-12 \
        and end["tokens"] == len(norm) and end["nonfinite_tokens"] == (~fin).sum()
    tf = [f for f in fr if f["kind"] == "tokens"]
    ok = (len(tf) == 1 and tf[0]["tokens"].tolist() == [[7, 8, 9, 10]] and "keep" not in tf[0] and fr[-1]["frames"] == 4
          and np.array_equal(keep, (~outlier).astype(float)) and rep_ok and meta_ok and end_ok and fr[0]["kind"] == "header"
          and np.array_equal(acts[fin].astype(np.float32), x[fin].astype(np.float32)) and hdr["hook"] == "blocks.1.hook_resid_post"
          and hdr["stages"][-1]["name"] == "sf-outliers")
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {int(outlier.sum())} outliers of {len(norm)}; keep ok "
          f"{np.array_equal(keep, (~outlier).astype(float))}, report ok {rep_ok}, header meta ok {meta_ok}, end meta ok {end_ok}")
    fail |= not ok

# 1. --max-norm T
T = mid_threshold(norm, 0.7)
fr, rep, _ = run(["--max-norm", repr(T)])
check("--max-norm", fr, rep, ~fin | (norm > T), {"outlier_rule": "max_norm", "outlier_threshold": T})

# 2. --norm-scalar s --multiplier m: outlier iff s*|x| > m*sqrt(d)
s, m = 0.37, 1.5
T2 = mid_threshold(norm, 0.5)
s = m * np.sqrt(D) / T2           # so that the threshold on |x| is T2
fr, rep, _ = run(["--norm-scalar", repr(s), "--multiplier", repr(m)])
check("--norm-scalar", fr, rep, ~fin | (s * norm > m * np.sqrt(D)),
      {"outlier_rule": "relative", "norm_scalar": s, "outlier_multiplier": m, "outlier_threshold": T2})

# 2b. the same with no d_model in the header: the stage holds frames until the first acts frame
sf.pack([sf.header(hook="blocks.1.hook_resid_post")] + stream[1:], "acts-nod.sf")
fr, rep, _ = run(["--norm-scalar", repr(s), "--multiplier", repr(m)], src="acts-nod.sf")
check("--norm-scalar, header without d_model", fr, rep, ~fin | (s * norm > m * np.sqrt(D)),
      {"outlier_rule": "relative", "norm_scalar": s, "outlier_threshold": T2})

# 3. --estimate 10 --multiplier 1.1: mean over the first 10 tokens (token 3 is NaN: 9 finite),
#    N ends inside frame 1, so frames 0 and 1 are held until the header is written
N, m = 10, 1.1
first = norm[:N][fin[:N]]
s3 = np.sqrt(D) / first.mean()
fr, rep, err = run(["--estimate", str(N), "--multiplier", repr(m), "-v"])
check("--estimate 10", fr, rep, ~fin | (s3 * norm > m * np.sqrt(D)),
      {"outlier_rule": "relative", "norm_scalar": s3, "outlier_multiplier": m, "norm_estimate_tokens": 9})
if "estimate over 10 tokens (9 finite)" not in err:
    print("FAIL: -v does not report the estimate:", err); fail = 1

# 4. --estimate past the end: all 24 tokens (23 finite), warning
s4 = np.sqrt(D) / norm[fin].mean()
fr, rep, err = run(["--estimate", "1000", "--multiplier", "1.3"])
check("--estimate 1000 (short stream)", fr, rep, ~fin | (s4 * norm > 1.3 * np.sqrt(D)),
      {"norm_scalar": s4, "norm_estimate_tokens": 23})
if "only 24 tokens" not in err:
    print("FAIL: no warning for a short stream:", err); fail = 1

# 5. stories260k reference activations (4 rows x 64, d 64): threshold 1.25 x the mean norm
if os.path.exists(f"{sf.FX}/reference/stories260k.json"):
    ref = sf.reference()
    xr = np.array(ref["models"]["stories260k"]["hooks"]["blocks.2.hook_resid_post"], np.float32)
    sf.pack(sf.acts_stream([(np.array(ref["tokens"], np.int32), xr)], d_model=64), "ref.sf")
    nr = np.sqrt((xr.astype(np.float64) ** 2).sum(-1)).reshape(-1)
    thr = 1.25 * nr.mean()                       # = m / s with s = sqrt(64)/mean, m = 1.25
    want = nr > thr
    p = subprocess.run(["sf-outliers", "--estimate", "256", "--multiplier", "1.25", "-i", "ref.sf", "-o", "ref-out.sf"], check=True)
    fr = sf.unpack("ref-out.sf")
    keep = fr[1]["keep"].reshape(-1)
    ok = np.array_equal(keep, (~want).astype(float)) and abs(fr[0]["meta"]["outlier_threshold"] - thr) < 1e-9 * thr
    print(f"{'ok  ' if ok else 'FAIL'} stories260k: mean norm {nr.mean():.4f}, threshold {thr:.4f}, "
          f"{int(want.sum())} outliers (positions {np.nonzero(want)[0].tolist()})")
    fail |= not ok
else:
    print("stories260k case skipped: fixtures absent")
sys.exit(fail)
EOF

#!/usr/bin/env bash
# sf-reduce, one model: L0 (f > 1e-8) and density (f > 1e-10) thresholds, L1, log density, dead
# count, r2_pooled vs explained_variance (a case where they differ: per-dimension offsets that a
# per-frame mu removes and a single scalar mean does not), mse, cos_recon, l2_ratio over
# non-outlier tokens, outliers, and every histogram (counts and edges) against numpy float64 on
# the same float32 data; loss frames from a second -i input land in the same block; an
# upstream stage's end-meta "seconds.STAGE" shows up in throughput.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import sys
import numpy as np
import oracles
import sfstream as sf
rng = np.random.default_rng(11)
D, S, CTX = 8, 16, 5
offs = rng.normal(0, 3, D)                      # per-dimension offsets: r2_pooled != EV
frames, recs, Fs, norms = [], [], [], []
for seq, rows in enumerate([2, 3]):
    n = rows * CTX
    X = (rng.normal(0, 1, (n, D)) + offs).astype(np.float32)
    X[3] *= 40                                  # an outlier token (keep = 0)
    Y = (X + rng.normal(0, 0.3, (n, D)) + 0.1).astype(np.float32)
    keep = np.ones(n, np.uint8); keep[3] = 0
    F = np.where(rng.random((n, S)) < 0.3, rng.exponential(1.0, (n, S)), 0).astype(np.float32)
    F[:, [2, 9]] = 0                            # dead features
    F[0, 5] = 5e-9                              # > 1e-10 (density) but not > 1e-8 (L0)
    F[1, 6] = 2e-11                             # > 0 but below both thresholds
    F[2, 7] = 3e-6
    frames.append(sf.acts_frame(seq, rng.integers(0, 100, (rows, CTX)), X.reshape(rows, CTX, D),
                                Y.reshape(rows, CTX, D), keep.reshape(rows, CTX), F.reshape(rows, CTX, S),
                                hook="blocks.0.hook_resid_post"))
    recs.append((X, Y, keep))
    Fs.append(F)
    norms.append(np.linalg.norm(X.astype(np.float64), axis=1))
sf.pack(sf.stream(frames, model="m", hook="blocks.0.hook_resid_post", sae="sae-x", outlier_threshold=12.5), "acts.sf")
# loss stream of the same model (second input)
ce = rng.uniform(1, 3, (4, CTX - 1)).astype(np.float32)
loss = [{"sf": 1, "kind": "loss", "seq": 0, "tokens": sf.tensor(rng.integers(0, 100, (4, CTX)), "i32"),
         "ce_clean": sf.tensor(ce, "f32"), "ce_spliced": sf.tensor(ce + 0.5, "f32"), "ce_ablated": sf.tensor(ce + 2.0, "f32")}]
ls = sf.stream(loss); ls[-1]["meta"] = {"seconds.sf-forward": 0.5}   # an upstream stage timed itself
sf.pack(ls, "loss.sf")

got = sf.run_json(["sf-reduce", "-i", "acts.sf", "-i", "loss.sf"])
m = got["model"]
F = np.concatenate(Fs)
fr = oracles.feats_ref(F)
rr = oracles.recon_ref(recs)
c = sf.Checker()
for k in ("l0", "l1", "dead_fraction"): c.close(m[k], fr[k], k)
c.eq(m["dead_count"], fr["dead_count"], "dead_count")
c.close(m["log_density"], fr["log_density"], "log_density")
for k in ("r2_pooled", "explained_variance", "mse", "cos_recon", "l2_ratio"): c.close(m[k], rr[k], k)
if abs(rr["r2_pooled"] - rr["explained_variance"]) < 0.05: print("FAIL: test data does not separate r2_pooled and EV"); sys.exit(1)
c.eq(m["outliers"], 2, "outliers"); c.close(m["outlier_fraction"], 2 / 25, "outlier_fraction")
c.eq(m["outlier_threshold"], 12.5, "outlier_threshold from the header (sf-outliers meta)")
# histograms: edges written out independently, counts by np.histogram
for key, name, vals in (("norm_hist", "norm", np.concatenate(norms)), ("act_log10_hist", "act", fr["act_log10"]),
                        ("density_hist", "dens", fr["log_density"])):
    c.close(m[key]["edges"], oracles.edges(name), key + ".edges", rtol=1e-12)
    c.eq(m[key]["counts"], oracles.hist_counts(vals, name).tolist(), key + ".counts")
c.eq(m["act_log10_hist"]["below"], 2, "act_log10_hist.below (2e-11, once per frame)")
c.eq(m["act_log10_hist"]["zeros"], fr["zeros"], "act_log10_hist.zeros")
c.eq(m["density_hist"]["counts"][0], 2, "density_hist: the dead spike at -10 is in bin 0")
# loss frames from the second input
c.close(m["ce_clean"], oracles.f64(ce).mean(), "ce_clean")
c.close(m["ce_spliced"], (oracles.f64(ce) + np.float32(0.5)).mean(), "ce_spliced", rtol=1e-7)
c.close(m["ce_delta"], 0.5, "ce_delta", rtol=1e-6)
c.close(m["ce_recovered"], 0.75, "ce_recovered", rtol=1e-6)
# top level and provenance
c.eq((got["tokens"], got["rows"], got["ctx"], got["hook"], got["sae"]), (25, 5, CTX, "blocks.0.hook_resid_post", "sae-x"), "top level")
c.eq([i["header"].get("model") for i in got["provenance"]["inputs"]], ["m", None], "provenance headers")
c.eq(got["provenance"]["inputs"][0]["end"]["rows"], 5, "provenance end frame")
c.eq(got["nan_counts"], {}, "nan_counts empty")
c.eq(got["throughput"]["sf-forward"], {"rows": 4, "seconds": 0.5, "tokens_per_s": 4 * CTX / 0.5}, "upstream throughput from end meta")
c.eq(set(got["throughput"]["sf-reduce"]), {"rows", "seconds", "tokens_per_s"}, "own throughput")
c.eq(got["throughput"]["sf-reduce"]["rows"], 9, "own throughput counts the rows of every input")
c.done()
EOF

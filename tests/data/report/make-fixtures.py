#!/usr/bin/env python3
"""Writes the sf-report test inputs (SPEC §4 layout, realistic shapes, fixed seed).
transfer.json: base vs finetune, d_sae 512, ctx 64, 40 rows (a Mistral-like good transfer);
transfer-bad.json: the same base vs a Gemma-python-like broken finetune;
missing.json: a transfer study without loss keys, "transfer" and "similarity" blocks.
Usage: make-fixtures.py OUTDIR [D_SAE] (D_SAE given: writes only OUTDIR/big.json)."""
import json, sys, math
import numpy as np

def hist(v, lo, hi, n):
    c, e = np.histogram(v, bins=n, range=(lo, hi))
    return {"edges": [round(float(x), 6) for x in e], "counts": [int(x) for x in c],
            "below": int((v < lo).sum()), "above": int((v > hi).sum()), "nan": 0}

def logz_hist(v, lo, step, n):
    e = [0.0] + [10 ** (lo + k * step) for k in range(n)]
    c, _ = np.histogram(v, bins=e)
    return {"edges": [float("%.6g" % x) for x in e], "counts": [int(x) for x in c], "below": 0, "above": int((v > e[-1]).sum()), "nan": 0}

def model(rng, ld, l0, ce, delta, r2, outl, ntok, good):
    dead = int((ld <= -9).sum())
    acts = rng.normal(0.0 if good else 0.4, 0.5, 4000)
    if not good: acts = np.concatenate([acts, rng.normal(-1.5, 0.2, 800), rng.normal(1.2, 0.2, 800)])
    norms = np.abs(rng.normal(60, 12, ntok)); norms[:outl] = rng.uniform(300, 900, outl)
    ce_sp = ce + delta; ce_ab = ce + 6.0
    return {"l0": l0, "l1": l0 * 1.7, "ce_clean": ce, "ce_spliced": ce_sp, "ce_ablated": ce_ab,
            "ce_delta": delta, "ce_recovered": (ce_ab - ce_sp) / (ce_ab - ce),
            "kl_spliced": delta * 0.9, "kl_ablated": 5.5, "r2_pooled": r2, "explained_variance": r2 - 0.03,
            "mse": (1 - r2) * 40, "cos_recon": 0.95 if good else 0.4, "l2_ratio": 0.97,
            "outliers": outl, "outlier_fraction": outl / ntok, "outlier_threshold": 200.0,
            "dead_fraction": dead / len(ld), "dead_count": dead,
            "log_density": [round(float(x), 6) for x in ld],
            "density_hist": hist(ld, -10.5, 0.5, 44),
            "act_log10_hist": dict(hist(acts, -4, 2, 60), zeros=int(ntok * len(ld) - ntok * l0)),
            "norm_hist": logz_hist(norms, -1, 0.05, 80), "d_sae": len(ld), "tokens": ntok}

def study(seed, d_sae, good, rows=40, ctx=64):
    rng = np.random.default_rng(seed)
    ntok = rows * ctx
    lb = rng.normal(-3.5, 1.0, d_sae).clip(-10, -0.5)
    lb[rng.random(d_sae) < 0.1] = -10.0
    if good:
        lf = (lb + rng.normal(0, 0.15, d_sae)).clip(-10, -0.3); lf[lb == -10] = -10.0
        lf[:6] = rng.uniform(-7, -5, 6) if lb[:6].min() > -10 else lf[:6]
        revive = np.where(lb == -10)[0][:8]; lf[revive] = rng.uniform(-6.5, -5, len(revive))
    else:
        lf = (0.35 * lb + rng.normal(-1.8, 0.8, d_sae)).clip(-10, -0.3)
    lb, lf = np.round(lb, 6), np.round(lf, 6)
    xb = np.where((lb <= -8) & (lf > -8))[0]; xf = np.where((lf <= -8) & (lb > -8))[0]
    reg = np.where((lb >= -5) & (lb <= -1) & (lf >= -5) & (lf <= -1))[0]
    err_b = np.abs(rng.normal(0.0003 if good else 0.025, 0.0002 if good else 0.01, len(xb)))
    err_f = np.abs(rng.normal(0.0002 if good else 1.0, 0.0001 if good else 0.8, len(xf)))
    asim = (rng.beta(30, 1.3, len(reg)) if good else rng.beta(2, 3, len(reg))).tolist()
    asim[0] = None  # a constant vector: NaN -> null
    lsim = (1 - np.abs(rng.normal(0, 0.0005 if good else 0.05, len(reg)))).tolist()
    a = [x for x in asim if x is not None]
    cosp = (0.98 if good else 0.68) - 0.3 * np.exp(-np.arange(ctx) / 3.0) * 0; cosp = cosp + 0.02 * np.exp(-np.arange(ctx) / 2.0)
    cosp[0] = 1.0
    cos_tok = (rng.normal(0.96 if good else 0.67, 0.03 if good else 0.12, ntok)).clip(-1, 1)
    l2_tok = np.abs(rng.normal(15 if good else 120, 5 if good else 30, ntok))
    doc = {"saeflow": "0.1.0", "tokens": ntok, "rows": rows, "ctx": ctx,
           "hook": "blocks.8.hook_resid_pre", "sae": "mistral-7b-res-wg/blocks.8.hook_resid_pre",
           "similarity": {"cos_mean": float(cos_tok.mean()), "l2_mean": float(l2_tok.mean()),
                          "cos_by_position": cosp.tolist(),
                          "l2_by_position": (l2_tok.mean() * (1 - np.exp(-np.arange(ctx) / 2.0))).tolist(),
                          "cos_by_row": cos_tok.reshape(rows, ctx).mean(1).tolist(),
                          "l2_by_row": l2_tok.reshape(rows, ctx).mean(1).tolist(),
                          "cos_hist": hist(cos_tok, -1, 1, 100), "l2_hist": logz_hist(l2_tok, -2, 0.05, 100)},
           "base": model(rng, lb, 83.37, 1.78, 0.15, 0.68, 18, ntok, True),
           "finetune": model(rng, lf, 90.22 if good else 84.74, 1.94 if good else 3.29, 0.16 if good else 4.21,
                             0.58 if good else -10.27, 16, ntok, good),
           "transfer": {"density_pearson": float(np.corrcoef(lb, lf)[0, 1]),
                        "dead_only_base": len(xb), "dead_only_finetune": len(xf),
                        "activation_error_dead_base": {"mean": float(err_b.mean()) if len(xb) else None, "max_finetune_act": 0.0042 if good else 1.1, "values": err_b.tolist()},
                        "activation_error_dead_finetune": {"mean": float(err_f.mean()) if len(xf) else None, "max_finetune_act": 0.0, "values": err_f.tolist()},
                        "regular_count": len(reg),
                        "activation_similarity": {"mean": float(np.mean(a)), "frac_above_0.8": float(np.mean(np.array(a) > 0.8)), "values": asim},
                        "logit_similarity": {"mean": float(np.mean(lsim)), "values": lsim},
                        "unembed_frobenius_ratio": 1.0021 if good else 1.117, "unembed_frobenius_error": 0.031 if good else 0.52},
           "throughput": {"sf-reduce": {"rows": rows, "seconds": 0.5, "tokens_per_s": ntok / 0.5}},
           "provenance": {"inputs": [
               {"role": r, "endpoint": r + ".sf", "header": {"model": m, "hook": "blocks.8.hook_resid_pre", "sae": "mistral-7b-res-wg",
                 "ctx": ctx, "bos": True, "tokenizer": "tokenizer.model", "d_model": 4096, "d_sae": d_sae, "outlier_threshold": 200.0,
                 "stages": [{"name": "sf-tokenize", "version": "0.1.0", "args": ["sf-tokenize", "--ctx", str(ctx), "data.jsonl"]},
                            {"name": "sf-forward", "version": "0.1.0", "args": ["sf-forward", "--model", m, "--hook", "blocks.8.hook_resid_pre"]}]}}
               for r, m in (("base", "Mistral-7B-v0.1"), ("finetune", "MetaMath-Mistral-7B" if good else "Mistral-7B-python"))],
               "reduce": {"version": "0.1.0", "args": ["sf-reduce", "--base", "base.sf", "--finetune", "finetune.sf"]}}}
    return doc

out = sys.argv[1]
if len(sys.argv) > 2:
    json.dump(study(7, int(sys.argv[2]), True), open(out + "/big.json", "w")); sys.exit(0)
json.dump(study(1, 512, True), open(out + "/transfer.json", "w"), indent=1)
json.dump(study(2, 512, False), open(out + "/transfer-bad.json", "w"), indent=1)
m = study(3, 512, True)
for k in ("ce_clean", "ce_spliced", "ce_ablated", "ce_delta", "ce_recovered", "kl_spliced", "kl_ablated"):
    del m["base"][k]; del m["finetune"][k]
del m["transfer"]; del m["similarity"]; del m["provenance"]
json.dump(m, open(out + "/missing.json", "w"), indent=1)

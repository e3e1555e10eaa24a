#!/usr/bin/env bash
# sf-encode: every architecture / cfg flag combination on small hand-made SAEs (random weights
# written by numpy), checked against an independent numpy float64 implementation of SAELens
# 3.22 (tests/oracles.py sae_ref): identical active sets, values within 1e-5 of the
# activation scale. Covers standard relu / tanh-relu, topk (both spellings), jumprelu, gated,
# apply_b_dec on/off, normalize_activations none / constant_norm_rescale /
# expected_average_only_in (cfg factor, flag, legacy bool) / layer_norm, finetuning scaling
# factor, legacy key names and missing keys, f16 / bf16 weights, 1 vs 2 threads.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import subprocess, sys
import numpy as np
import oracles
import sfstream as sf

D_IN, D_SAE, HOOK = 16, 48, "blocks.3.hook_resid_pre"
rng = np.random.default_rng(7)
frames = [(rng.integers(0, 500, (2, 5)).astype(np.int32), rng.normal(0.5, 2.0, (2, 5, D_IN)).astype(np.float32))
          for _ in range(2)]
x = np.concatenate([a.reshape(-1, D_IN) for _, a in frames])
scale = float(np.abs(x).max())
sf.pack(sf.acts_stream(frames, hook=HOOK, d_model=D_IN), "acts.sf")

def base_cfg(**kw):
    c = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "hook_name": HOOK,
         "activation_fn_str": "relu", "activation_fn_kwargs": {}, "apply_b_dec_to_input": True,
         "finetuning_scaling_factor": False, "normalize_activations": "none"}
    c.update(kw)
    return c

def drop(c, *keys):
    return {k: v for k, v in c.items() if k not in keys}

cases = []   # (name, cfg, arch of the tensors, extra tensors, dtype, flags, ref norm factor)
cases.append(("standard relu", base_cfg(), "standard", {}, "F32", [], None))
cases.append(("standard relu no b_dec", base_cfg(apply_b_dec_to_input=False), "standard", {}, "F32", [], None))
cases.append(("tanh-relu", base_cfg(activation_fn_str="tanh-relu"), "standard", {}, "F32", [], None))
cases.append(("topk k5 + constant_norm_rescale", base_cfg(activation_fn_str="topk", activation_fn_kwargs={"k": 5},
              normalize_activations="constant_norm_rescale", apply_b_dec_to_input=False), "standard", {}, "F32", [], None))
cases.append(("architecture topk (k in cfg)", drop(base_cfg(architecture="topk", k=3), "activation_fn_str"),
              "standard", {}, "F32", [], None))
cases.append(("jumprelu", base_cfg(architecture="jumprelu"), "jumprelu", {}, "F32", [], None))
cases.append(("jumprelu no b_dec + rescale", base_cfg(architecture="jumprelu", apply_b_dec_to_input=False,
              normalize_activations="constant_norm_rescale"), "jumprelu", {}, "F32", [], None))
cases.append(("gated", base_cfg(architecture="gated"), "gated", {}, "F32", [], None))
cases.append(("gated topk k4", base_cfg(architecture="gated", activation_fn_str="topk", activation_fn_kwargs={"k": 4}),
              "gated", {}, "F32", [], None))
cases.append(("expected_average_only_in, cfg factor", base_cfg(normalize_activations="expected_average_only_in",
              norm_scaling_factor=0.37), "standard", {}, "F32", [], 0.37))
cases.append(("expected_average_only_in, flag overrides cfg", base_cfg(normalize_activations="expected_average_only_in",
              norm_scaling_factor=0.37), "standard", {}, "F32", ["--norm-scaling-factor", "2.5"], 2.5))
cases.append(("legacy normalize_activations true + flag", base_cfg(normalize_activations=True), "standard", {}, "F32",
              ["--norm-scaling-factor", "0.8"], 0.8))
cases.append(("layer_norm", base_cfg(normalize_activations="layer_norm"), "standard", {}, "F32", [], None))
ft = np.abs(rng.normal(1.0, 0.5, D_SAE)).astype(np.float32)
cases.append(("finetuning_scaling_factor (scaling_factor tensor)", base_cfg(finetuning_scaling_factor=True),
              "standard", {"scaling_factor": ft}, "F32", [], None))
cases.append(("finetuning_scaling_factor (finetuning_scaling_factor tensor) gated",
              base_cfg(architecture="gated", finetuning_scaling_factor=True), "gated",
              {"finetuning_scaling_factor": ft}, "F32", [], None))
cases.append(("all-ones scaling_factor ignored", base_cfg(), "standard",
              {"scaling_factor": np.ones(D_SAE, np.float32)}, "F32", [], None))
legacy = drop(base_cfg(), "hook_name", "activation_fn_str", "apply_b_dec_to_input", "architecture",
              "normalize_activations", "d_sae", "finetuning_scaling_factor")
legacy.update(hook_point=HOOK, hook_point_layer=3, activation_fn="relu")
cases.append(("legacy names, SAELens defaults for missing keys", legacy, "standard", {}, "F32", [], None))
v6 = drop(base_cfg(architecture="topk", k=4, apply_b_dec_to_input=False), "hook_name", "activation_fn_str")
v6["metadata"] = {"hook_name": HOOK, "sae_lens_version": "6.5.0"}
cases.append(("SAELens 6 layout (architecture topk, metadata.hook_name)", v6, "standard", {}, "F32", [], None))
cases.append(("f16 weights, topk", base_cfg(activation_fn_str="topk", activation_fn_kwargs={"k": 6}), "standard", {}, "F16", [], None))
cases.append(("bf16 weights, jumprelu", base_cfg(architecture="jumprelu"), "jumprelu", {}, "BF16", [], None))
cases.append(("relu, 2 threads", base_cfg(), "standard", {}, "F32", ["--threads", "2"], None))
cases.append(("topk, 3 threads", base_cfg(activation_fn_str="topk", activation_fn_kwargs={"k": 5}), "standard", {}, "F32", ["--threads", "3"], None))

fail = 0
for i, (name, cfg, arch, extra, dtype, flags, nsf) in enumerate(cases):
    t = sf.random_sae(np.random.default_rng(100 + i), D_IN, D_SAE, arch, scale=0.5)
    t.update(extra)
    d = f"sae{i}"
    sf.write_sae(d, cfg, t, dtype)
    ts = {k: sf.as_stored(v, dtype) for k, v in t.items()}
    f_ref, r_ref = oracles.sae_ref(cfg, ts, x, nsf)
    p = subprocess.run(["sf-encode", "--sae", d, "--splice", "-i", "acts.sf", "-o", "out.sf"] + flags,
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL {name}: exit {p.returncode}: {p.stderr.strip()}"); fail = 1; continue
    fr = [f for f in sf.unpack("out.sf") if f["kind"] == "acts"]
    f = np.concatenate([sf.csr_dense(a["feats"]) for a in fr])
    r = np.concatenate([a["recon"].reshape(-1, D_IN) for a in fr])
    same = np.array_equal(f > 0, f_ref > 0)
    ef, er = np.abs(f - f_ref).max(), np.abs(r - r_ref).max()
    l0 = (f_ref > 0).sum(1).mean()
    ok = same and ef <= 1e-5 * scale and er <= 1e-5 * scale and 0 < l0 < D_SAE
    print(f"{'ok  ' if ok else 'FAIL'} {name}: L0 {l0:.2f}, active sets equal {same}, max |f err| {ef:.2g}, max |recon err| {er:.2g}")
    fail |= not ok
sys.exit(fail)
EOF

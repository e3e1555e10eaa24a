#!/usr/bin/env bash
# sf-encode on the fixture SAEs (stories260k-L2-relu: standard, apply_b_dec; -topk: k 8,
# constant_norm_rescale) against reference/stories260k.json: identical active sets, feature
# values and reconstructions within 1e-5 of the activation scale; also through f16 acts input
# and --drop-acts.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
[ -f "$SF_FIXTURES/reference/stories260k.json" ] || skip "reference/stories260k.json missing"
"$PY" - <<'EOF' || exit 1
import subprocess, sys
import numpy as np
import oracles
import sfstream as sf
fx = sf.FX
ref = sf.reference()
x = np.array(ref["models"]["stories260k"]["hooks"]["blocks.2.hook_resid_post"], np.float32)  # [4,64,64]
tok = np.array(ref["tokens"], np.int32)
scale = float(np.abs(x).max())
sf.pack(sf.acts_stream([(tok[:2], x[:2]), (tok[2:], x[2:])], d_model=64), "acts.sf")   # two frames

fail = 0
for name in ("stories260k-L2-relu", "stories260k-L2-topk"):
    r = ref["saes"][name]
    subprocess.run(["sf-encode", "--sae", f"{fx}/saes/{name}", "--splice", "-i", "acts.sf", "-o", "enc.sf"], check=True)
    fr = sf.unpack("enc.sf")
    assert fr[0]["kind"] == "header" and fr[0]["meta"]["d_sae"] == 512 and fr[0]["meta"]["sae"] == name
    data = [f for f in fr if f["kind"] == "acts"]
    assert len(data) == 2 and fr[-1]["kind"] == "end" and fr[-1]["meta"]["nonfinite_tokens"] == 0
    # CSR of the whole batch (frames concatenated) vs the reference CSR
    idx = np.concatenate([d["feats"]["index"] for d in data])
    val = np.concatenate([d["feats"]["value"] for d in data])
    cnt = np.concatenate([np.diff(d["feats"]["indptr"]) for d in data])
    rc = r["feats_csr"]
    ok_sets = np.array_equal(cnt, np.diff(rc["indptr"])) and np.array_equal(idx, rc["index"])
    ferr = np.abs(val - np.array(rc["value"], np.float32)).max() if ok_sets else np.inf
    recon = np.concatenate([d["recon"] for d in data])
    rerr = np.abs(recon - np.array(r["reconstruction"], np.float32)).max()
    acts_back = np.concatenate([d["acts"] for d in data])
    print(f"{name}: nnz {len(idx)} (ref {len(rc['index'])}), active sets equal {ok_sets}, "
          f"max |f err| {ferr:.3g}, max |recon err| {rerr:.3g} (scale {scale:.3g})")
    if not ok_sets or ferr > 1e-5 * scale or rerr > 1e-5 * scale or not np.array_equal(acts_back.astype(np.float32), x):
        fail = 1

# f16 acts in (converted by the stage) == same SAE on f16-rounded inputs; --drop-acts
x16 = x.astype(np.float16).astype(np.float32)
sf.pack(sf.acts_stream([(tok, x16)], dtype="f16", d_model=64), "acts16.sf")
subprocess.run(["sf-encode", "--sae", f"{fx}/saes/stories260k-L2-relu", "--splice", "--drop-acts",
                "-i", "acts16.sf", "-o", "enc16.sf"], check=True)
d = [f for f in sf.unpack("enc16.sf") if f["kind"] == "acts"][0]
cfg, t = sf.read_sae(f"{fx}/saes/stories260k-L2-relu")
f, rec = oracles.sae_ref(cfg, t, x16.reshape(-1, 64))
got = sf.csr_dense(d["feats"])
same = np.array_equal(got > 0, f > 0)
e1 = np.abs(got - f).max(); e2 = np.abs(d["recon"].reshape(-1, 64) - rec).max()
print(f"f16 input: active sets equal {same}, max |f err| {e1:.3g}, max |recon err| {e2:.3g}, acts dropped {'acts' not in d}")
if not same or e1 > 1e-5 * scale or e2 > 1e-5 * scale or "acts" in d:
    fail = 1
sys.exit(fail)
EOF

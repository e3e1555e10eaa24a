#!/usr/bin/env bash
# The real chain on the stories260k fixtures: reference tokens -> sf-forward (base, hook
# blocks.2.hook_resid_post) -> sf-outliers --estimate -> sf-encode --splice (relu SAE), checked
# against reference/stories260k.json (active sets, feature values and reconstruction within 1e-5
# of the activation scale) and the keep mask against a threshold computed here from the
# reference activations. Skips until sf-forward is built.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
"$PY" - <<'EOF' || exit 1
import subprocess, sys
import numpy as np
import sfstream as sf
fx = sf.FX
ref = sf.reference()
tok = np.array(ref["tokens"], np.int32)
x = np.array(ref["models"]["stories260k"]["hooks"]["blocks.2.hook_resid_post"], np.float32)
sf.pack(sf.stream([sf.tokens_frame(0, tok)]), "tok.sf")
hook = "blocks.2.hook_resid_post"
cmd = (f"sf-forward --model {fx}/models/stories260k --hook {hook} -q -i tok.sf"
       f" | sf-outliers --estimate 256 --multiplier 1.25 -q"
       f" | sf-encode --sae {fx}/saes/stories260k-L2-relu --splice -q -o out.sf")
subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
fr = sf.unpack("out.sf")
d = [f for f in fr if f["kind"] == "acts"][0]
scale = float(np.abs(x).max())
r = ref["saes"]["stories260k-L2-relu"]
got = sf.csr_dense(d["feats"])
want = sf.csr_dense({"d_sae": 512, "indptr": np.array(r["feats_csr"]["indptr"]),
                     "index": np.array(r["feats_csr"]["index"]), "value": np.array(r["feats_csr"]["value"])})
same = np.array_equal(got > 0, want > 0)
ef = np.abs(got - want).max()
er = np.abs(d["recon"] - np.array(r["reconstruction"])).max()
nr = np.sqrt((x.astype(np.float64) ** 2).sum(-1)).reshape(-1)
keep_want = (nr <= 1.25 * nr.mean()).astype(float)
keep_ok = np.array_equal(d["keep"].reshape(-1), keep_want)
hdr = fr[0]["meta"]
print(f"active sets equal {same}, max |f err| {ef:.3g}, max |recon err| {er:.3g} (scale {scale:.3g}), "
      f"keep mask ok {keep_ok} ({int((1 - keep_want).sum())} outliers), header sae {hdr.get('sae')} "
      f"threshold {hdr.get('outlier_threshold')}")
sys.exit(0 if same and ef <= 1e-5 * scale and er <= 1e-5 * scale and keep_ok and hdr.get("sae") == "stories260k-L2-relu" else 1)
EOF

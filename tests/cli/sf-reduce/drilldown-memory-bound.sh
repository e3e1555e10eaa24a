# --top-k 64 --context 64 at d_sae 65536 would need 4.1 GiB per model: refused at the first feats
# frame (exit 1), naming the bound
"$PY" - <<'PY'
import numpy as np, sfstream as sf
F = np.zeros((1, 4, 65536), np.float32); F[0, 0, 7] = 1.0
sf.pack(sf.stream([sf.acts_frame(0, np.arange(4).reshape(1, 4), feats=F)]), "a.sf")
PY
sf-reduce --top-k 64 --context 64 -i a.sf

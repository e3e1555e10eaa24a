"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" "$SF_ROOT/tests/sfstream.py" acts '{"nan": [4]}' | sf-cat --pack | sf-encode --sae s --splice | sf-cat | "$PY" -c "
import json, sys, math
fr = [json.loads(l) for l in sys.stdin]
a = fr[1]; ip = a[\"feats\"][\"indptr\"][\"data\"]; r = a[\"recon\"][\"data\"]
print(\"features of token 4:\", ip[5] - ip[4], \"others:\", min(ip[i+1] - ip[i] for i in range(6) if i != 4) > 0)
print(\"recon of token 4 all NaN:\", all(v is None or (isinstance(v, float) and math.isnan(v)) for v in r[32:40]), \"others finite:\", all(isinstance(v, float) and math.isfinite(v) for v in r[:32] + r[40:]))
print(\"end meta:\", fr[-1][\"meta\"])
"

# issue 15: a safetensors header naming a tensor twice was accepted (the first won; the Python
# and Rust readers refuse it or take the last): now refused, naming the tensor
"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" - <<'PY'
import json, struct
src = open("s/sae_weights.safetensors", "rb").read()
n = struct.unpack("<Q", src[:8])[0]
h = json.loads(src[8:8 + n])
data = src[8 + n:]
e = dict(h["b_dec"]); size = e["data_offsets"][1] - e["data_offsets"][0]
e["data_offsets"] = [len(data), len(data) + size]   # its own fresh bytes: only the name is wrong
hb = json.dumps(h).encode()[:-1] + b',"b_dec":' + json.dumps(e).encode() + b"}"
hb += b" " * (-len(hb) % 8)
open("s/sae_weights.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + data + b"\0" * size)
PY
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null

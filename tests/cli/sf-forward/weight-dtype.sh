"$PY" "$SF_ROOT/tests/sfstream.py" tiny m mistral && "$PY" - <<'EOF'
import json, struct
src = open("m/model.safetensors", "rb").read()
n = struct.unpack("<Q", src[:8])[0]
h = json.loads(src[8:8 + n])
e = h["model.layers.0.input_layernorm.weight"]
e["dtype"] = "I32"; e["shape"] = [e["shape"][0] // 2]   # the same bytes, read as i32
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open("m/model.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + src[8 + n:])
EOF
sf-forward --model m --hook blocks.0.hook_resid_post < /dev/null > /dev/null

# issue 15 (review): a safetensors header was bounded only by the file: a header length of 2^40
# was compared with the file size only, and a header of a million tiny JSON values took cJSON
# ~80 bytes each. Now the length is at most 100000000 bytes (the safetensors crate's bound) and
# the values are counted (at most 1048576) before the JSON is parsed.
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf
"$PY" "$SF_ROOT/tests/sfstream.py" sae s && cp -r s t && "$PY" - <<'PY'
import struct
src = open("s/sae_weights.safetensors", "rb").read()
open("s/sae_weights.safetensors", "wb").write(struct.pack("<Q", 1 << 40) + src[8:])
hb = b'{"__metadata__":{"a":[' + b"0," * (1 << 20) + b'0]}}'   # 1048578 values in 2 MB
hb += b" " * (-len(hb) % 8)
open("t/sae_weights.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb)
PY
sf-encode --sae s -i a.sf > /dev/null; echo "rc $?"
sf-encode --sae t -i a.sf > /dev/null; echo "rc $?"

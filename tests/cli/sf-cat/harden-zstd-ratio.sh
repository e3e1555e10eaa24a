# issue 15 (review): a "zstd": true tensor whose declared decompressed size agreed with its shape
# had that memory reserved before decompressing: 17 bytes could claim a GiB. The claim is now
# checked before anything is reserved: at most 32768 times the zstd bytes (zstd cannot do
# better: each block of at most 128 KiB costs at least 4 bytes) and at most 2^32 - 1 bytes (the
# largest bin). Real zstd at its best ratio (1 MiB of zeros, about 26000:1) still passes.
"$PY" - <<'PY'
import struct
def s(x): return bytes([0xa0 | len(x)]) + x.encode()
def stream(name, n):
    # one zstd frame: single segment, 8-byte content size n, one last RLE block of 128 KiB
    z = b"\x28\xb5\x2f\xfd" + b"\xe0" + struct.pack("<Q", n) + (1 | 1 << 1 | 131072 << 3).to_bytes(3, "little") + b"\0"
    t = b"\x84" + s("dtype") + s("u8") + s("shape") + b"\x91\xcf" + struct.pack(">Q", n) + s("data") + b"\xc4" + bytes([len(z)]) + z + s("zstd") + b"\xc3"
    hdr = b"\x83" + s("sf") + b"\x01" + s("kind") + s("header") + s("meta") + b"\x80"
    frame = b"\x84" + s("sf") + b"\x01" + s("kind") + s("other") + s("seq") + b"\x00" + s("x") + t
    end = b"\x84" + s("sf") + b"\x01" + s("kind") + s("end") + s("frames") + b"\x01" + s("rows") + b"\x00"
    open(name, "wb").write(hdr + frame + end)
stream("gib.sf", 1 << 30)
stream("huge.sf", 1 << 33)
import json
z = {"dtype": "f32", "shape": [1, 4, 65536], "data": [0] * (4 * 65536)}
lines = [{"sf": 1, "kind": "header", "meta": {}},
         {"sf": 1, "kind": "acts", "seq": 0, "hook": "blocks.0.hook_resid_post", "tokens": {"dtype": "i32", "shape": [1, 4], "data": [1, 2, 3, 4]}, "acts": z},
         {"sf": 1, "kind": "end", "frames": 1, "rows": 1}]
open("zeros.jsonl", "w").write("".join(json.dumps(l) + "\n" for l in lines))
PY
# (no ulimit -v under ASan: its shadow memory needs the address space)
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 400000; sf-cat --check -i gib.sf); echo "rc $?"
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 400000; sf-cat --check -i huge.sf); echo "rc $?"
sf-cat --pack -i zeros.jsonl -o zeros.sf && sf-cat --hook blocks.0.hook_resid_post --zstd -i zeros.sf -o z.sf && sf-cat --check -i z.sf; echo "rc $?"
"$PY" -c "import os; print('compressed', os.path.getsize('z.sf') < 4096)"

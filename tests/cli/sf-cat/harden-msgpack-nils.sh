# issue 15: a 20 MB frame of msgpack nils took 490 MB (msgpack-c's unpacker, 24 bytes per
# object); a frame of more than 65536 objects is now refused before it is unpacked
"$PY" - <<'PY'
import struct
def s(x): return bytes([0xa0 | len(x)]) + x.encode()
hdr = b"\x83" + s("sf") + b"\x01" + s("kind") + s("header") + s("meta") + b"\x80"
n = 20 * 1000 * 1000
frame = b"\x84" + s("sf") + b"\x01" + s("kind") + s("other") + s("seq") + b"\x00" + s("x") + b"\xdd" + struct.pack(">I", n) + b"\xc0" * n
end = b"\x84" + s("sf") + b"\x01" + s("kind") + s("end") + s("frames") + b"\x01" + s("rows") + b"\x00"
open("nils.sf", "wb").write(hdr + frame + end)
PY
# (no ulimit -v under ASan: its shadow memory needs the address space)
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 400000; sf-cat --check -i nils.sf)

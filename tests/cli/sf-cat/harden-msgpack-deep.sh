# issue 15: deep msgpack nesting said "out of memory"; it now says what msgpack-c refuses
"$PY" - <<'PY'
def s(x): return bytes([0xa0 | len(x)]) + x.encode()
open("deep.sf", "wb").write(b"\x83" + s("sf") + b"\x01" + s("kind") + s("header") + s("meta") + b"\x91" * 40 + b"\xc0")
PY
sf-cat --check -i deep.sf

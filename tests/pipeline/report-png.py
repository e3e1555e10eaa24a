#!/usr/bin/env python3
"""png-colours: a small PNG decoder (8-bit gray/RGB/RGBA, non-interlaced; plain python, no PIL)
for the sf-report checks. Usage: report-png.py [--min-colours N] [--size WxH] FILE...
Prints "FILE WxH COLOURS non-white=FRACTION" per file; exit 1 when a file has fewer than N
distinct colours (blank) or another size."""
import struct, sys, zlib

def decode(path):
    b = open(path, "rb").read()
    if b[:8] != b"\x89PNG\r\n\x1a\n": raise ValueError("not a PNG")
    i, idat = 8, []
    while i < len(b):
        n, t = struct.unpack(">I4s", b[i:i + 8]); c = b[i + 8:i + 8 + n]; i += 12 + n
        if t == b"IHDR": w, h, bd, ct, _, _, il = struct.unpack(">IIBBBBB", c)
        elif t == b"IDAT": idat.append(c)
    if bd != 8 or il: raise ValueError("only 8-bit non-interlaced PNGs")
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
    raw, stride = zlib.decompress(b"".join(idat)), w * ch
    prev, rows = bytearray(stride), []
    for y in range(h):
        f, o = raw[y * (stride + 1)], y * (stride + 1) + 1
        cur = bytearray(raw[o:o + stride])
        if f == 1:
            for x in range(ch, stride): cur[x] = (cur[x] + cur[x - ch]) & 255
        elif f == 2:
            cur = bytearray((a + p) & 255 for a, p in zip(cur, prev))
        elif f == 3:
            for x in range(stride): cur[x] = (cur[x] + ((cur[x - ch] if x >= ch else 0) + prev[x]) // 2) & 255
        elif f == 4:
            for x in range(stride):
                a = cur[x - ch] if x >= ch else 0; bb = prev[x]; c = prev[x - ch] if x >= ch else 0
                pa, pb, pc = abs(bb - c), abs(a - c), abs(a + bb - 2 * c)
                cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else bb if pb <= pc else c)) & 255
        rows.append(bytes(cur)); prev = cur
    return w, h, ch, rows

def main(argv):
    mn, size, bad = 8, None, 0
    while argv and argv[0].startswith("--"):
        if argv[0] == "--min-colours": mn = int(argv[1])
        elif argv[0] == "--size": size = argv[1]
        argv = argv[2:]
    for p in argv:
        w, h, ch, rows = decode(p)
        n = 3 if ch >= 3 else 1
        cols, nonwhite = set(), 0
        for r in rows:
            px = [r[k:k + n] for k in range(0, len(r), ch)]
            cols.update(px); nonwhite += sum(1 for q in px if q != b"\xff" * n)
        frac = nonwhite / (w * h)
        print("%s %dx%d %d non-white=%.4f" % (p, w, h, len(cols), frac))
        if len(cols) < mn or (size and size != "%dx%d" % (w, h)): bad += 1
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

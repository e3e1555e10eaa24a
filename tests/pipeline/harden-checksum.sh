#!/bin/bash
# issue 15: optional end-to-end integrity. A frame written to a file, a .zst file or tcp://
# carries "crc" (CRC32C of its tensor data bins, PROTOCOL.md §2); a reader checks it when present:
# one flipped byte inside a tensor payload is exit 1 naming the frame. Streams without it still
# read; pipes carry none unless --checksum; sf-cat's JSON never shows the key; .zst files carry
# zstd's content checksum too.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" -c 'import numpy as np, sfstream as s
r = np.random.default_rng(2)
fr = [(np.arange(6, dtype=np.int32).reshape(2, 3) + i, r.normal(0, 1, (2, 3, 64)).astype(np.float32)) for i in range(3)]
print(s.jsonl(s.acts_stream(fr, d_model=64)), end="")' | sf-cat --pack > a.sf || die "acts"
has_crc() { "$PY" -c 'import sys; sys.exit(0 if b"\xa3crc" in open(sys.argv[1],"rb").read() else 1)' "$1"; }
flip() { # IN OUT: flip one byte 5 bytes into the first tensor data bin of the data frame with seq 1
  "$PY" - "$1" "$2" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
s = b.index(b"\xa3seq\x01")
d = b.index(b"\xa4data", s) + 5
hdr = {0xc4: 2, 0xc5: 3, 0xc6: 5}[b[d]]
b[d + hdr + 5] ^= 0x10
open(sys.argv[2], "wb").write(b)
PY
}
sf-outliers --max-norm 30 -i a.sf -o c.sf || die "write c.sf"
has_crc c.sf || die "a file output has no crc"
sf-cat --check -i c.sf > /dev/null || die "a checksummed stream does not check"
flip c.sf bad.sf
for stage in "sf-cat --check" "sf-cat --summary" "sf-outliers --max-norm 30 -o /dev/null"; do
  $stage -i bad.sf > /dev/null 2> err.txt; rc=$?
  [ $rc = 1 ] || die "$stage: corrupted stream: exit $rc, expected 1 ($(cat err.txt))"
  grep -q "error: bad.sf: .*frame 1: checksum mismatch" err.txt || die "$stage: message: $(cat err.txt)"
done
# written with --checksum through the zstd tensor path too
sf-outliers --zstd --max-norm 30 -i a.sf -o cz.sf || die "write cz.sf"
flip cz.sf badz.sf
sf-cat --check -i badz.sf > /dev/null 2> err.txt; [ $? = 1 ] || die "zstd tensors: corruption passed"
grep -q "frame 1: checksum mismatch" err.txt || die "zstd tensors: message: $(cat err.txt)"
# no checksum: --no-checksum files and pipes carry none; such a stream still reads
sf-outliers --no-checksum --max-norm 30 -i a.sf -o n.sf || die "write n.sf"
has_crc n.sf && die "--no-checksum wrote a crc"
sf-outliers --max-norm 30 -i a.sf | cat > p.sf || die "pipe"
has_crc p.sf && die "a pipe output has a crc by default"
sf-outliers --checksum --max-norm 30 -i a.sf | cat > pc.sf || die "pipe --checksum"
has_crc pc.sf || die "--checksum on a pipe wrote no crc"
sf-cat --check -i n.sf > /dev/null || die "a stream without checksums does not read"
flip n.sf badn.sf
sf-cat --check -i badn.sf > /dev/null || die "without checksums a flipped payload byte cannot be seen (expected exit 0)"
# sf-cat JSON hides the key: the same JSON with and without checksums
sf-cat -i c.sf > c.json && sf-cat -i n.sf > n.json || die "sf-cat JSON"
grep -q '"crc"' c.json && die "sf-cat JSON shows the crc"
cmp -s <(tail -n +2 c.json) <(tail -n +2 n.json) || die "sf-cat JSON differs with and without checksums"
# a stale or forged crc (a JSON line packed as it stands) is caught
mkframes 2 | sed 's/"seq":1,/"seq":1,"crc":12345,/' | sf-cat --pack > forged.sf
sf-cat --check -i forged.sf > /dev/null 2> err.txt; [ $? = 1 ] && grep -q "frame 1: checksum mismatch" err.txt || die "forged crc: $(cat err.txt)"
# a stage re-checksums what it writes (the reader drops the upstream crc)
sf-outliers --max-norm 30 -i c.sf -o c2.sf && sf-cat --check -i c2.sf > /dev/null || die "re-writing a checksummed stream"
# .zst files: zstd's content checksum (XXH64) and the frames' crc
sf-outliers --max-norm 30 -i a.sf -o z.sf.zst || die "write z.sf.zst"
if command -v zstd >/dev/null; then
  zstd -lv z.sf.zst 2>&1 | grep -q "Check: XXH64" || die "z.sf.zst has no zstd content checksum: $(zstd -lv z.sf.zst 2>&1)"
  zstd -dcq z.sf.zst > z.sf && has_crc z.sf || die "z.sf.zst frames have no crc"
fi
sf-cat --check -i z.sf.zst > /dev/null || die "z.sf.zst does not check"
echo ok

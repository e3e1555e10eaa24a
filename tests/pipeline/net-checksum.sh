# The per-frame checksum end to end over tcp:// (PROTOCOL.md §2 "Checksum"): a relay between a
# writer and its reader (loopback 127.0.0.1, random ports; a Python TCP proxy made here) flips one
# byte of frame 2's tensor data in flight. The reader refuses the frame (exit 1, naming frame 2),
# the writer hears it (exit 1); the same relay passing bytes untouched delivers the stream; with
# --no-checksum the flipped byte gets through unseen (what the checksum is for). Bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=5 SAEFLOW_ZMQ_HEARTBEAT=2
cleanup() { pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
H=blocks.0.hook_resid_post   # sf-cat --hook H writes frames with put (a crc on tcp://)
mkframes 8 > f8.jsonl
cat > relay.py <<'PY'
import select, socket, sys
listen, target, flip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "flip"
pat = bytes([2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])   # frame 2's tokens data: [2,1,2,3,...]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen)); ls.listen(1); print("ready", flush=True)
a, _ = ls.accept(); b = socket.create_connection(("127.0.0.1", target))
held, done = b"", not flip
while True:
    r, _, _ = select.select([a, b], [], [], 0.05)
    if not r and held: b.sendall(held); held = b""          # quiet: nothing can straddle now
    if a in r:
        d = a.recv(65536)
        if not d: break
        held += d
        i = -1 if done else held.find(pat)
        if i >= 0: held = held[:i + 12] + bytes([held[i + 12] ^ 0x10]) + held[i + 13:]; done = True
        keep = 0 if done else len(pat)                         # hold a tail that may start the pattern
        b.sendall(held[:len(held) - keep]); held = held[len(held) - keep:]
    if b in r:
        d = b.recv(65536)
        if not d: break
        a.sendall(d)
if held: b.sendall(held)
PY
port=$((20000 + RANDOM % 30000))
run() { # MODE(flip|pass) [WRITER FLAGS]: relay, reader, writer; sets rrc wrc
  local mode=$1; shift; port=$((port+2))
  timeout 20 sf-cat -i "tcp://@127.0.0.1:$port" > r.json 2> r.err & rp=$!
  timeout 20 "$PY" relay.py $((port+1)) $port $mode > relay.out & xp=$!
  for i in $(seq 50); do grep -q ready relay.out 2>/dev/null && break; sleep 0.1; done
  sf-cat --pack -i f8.jsonl | timeout 20 sf-cat --hook $H "$@" -o "tcp://127.0.0.1:$((port+1))" 2> w.err; wrc=${PIPESTATUS[1]}
  wait $rp; rrc=$?; kill $xp 2>/dev/null; wait $xp 2>/dev/null
}
run pass
[ $rrc = 0 ] && [ $wrc = 0 ] && [ "$(grep -c '"kind":"tokens"' r.json)" = 8 ] || die "untouched relay: reader $rrc, writer $wrc: $(cat r.err w.err)"
run flip
[ $rrc = 1 ] && grep -q "^sf-cat: error: tcp://@127.0.0.1:$port: .*frame 2: checksum mismatch" r.err || die "flipped byte: reader exit $rrc: $(cat r.err)"
[ "$(grep -c '"kind":"tokens"' r.json)" = 2 ] || die "flipped byte: frames before it: $(grep -c tokens r.json)"
[ $wrc = 1 ] && grep -q "downstream sf-cat left after 2 frames: .*checksum mismatch" w.err || die "flipped byte: writer exit $wrc: $(cat w.err)"
run flip --no-checksum
[ $rrc = 0 ] && grep -q '"data":\[2,1,2,19,' r.json || die "--no-checksum: the flip should pass unseen: reader $rrc: $(cat r.err)"
echo "checksum over tcp://: a byte flipped in flight refused at frame 2; untouched and unchecked streams pass"

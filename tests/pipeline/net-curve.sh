# CURVE keys on tcp:// (loopback 127.0.0.1, random ports): sf-cat --keygen writes Z85 key files
# (secrets 0600, never overwritten); with --keys / SAEFLOW_ZMQ_KEYS a keyed stream completes;
# while it runs, a client with an unknown key is refused (exit 1, "refused"), a keyless client
# and 10,000 random bytes sent to the port (three times) are dropped, and the legitimate stream
# still arrives whole; with keys a non-loopback bind needs no --insecure. Every wait is bounded.
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=4 SAEFLOW_ZMQ_HEARTBEAT=2
unset SAEFLOW_ZMQ_KEYS
cleanup() { pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
port=$((20000 + RANDOM % 30000))
mkframes 8 > f8.jsonl; head -4 f8.jsonl > a.jsonl; tail -n +5 f8.jsonl > b.jsonl
cat > junk.py <<'PYEOF'
import os, socket, sys, time
for k in range(3):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
        s.sendall(os.urandom(10000)); time.sleep(0.2); s.close()
    except OSError as e:
        sys.exit("junk: %s" % e)
PYEOF

# 1. keygen
sf-cat --keygen keys || die "keygen failed"
for f in server.pub server.secret client.pub client.secret; do
  [ "$(tr -d '\n' < keys/$f | wc -c)" = 40 ] || die "keys/$f is not one 40-character Z85 key"
done
[ "$(stat -c %a keys/server.secret)" = 600 ] && [ "$(stat -c %a keys/client.secret)" = 600 ] && [ "$(stat -c %a keys)" = 700 ] || die "key modes: $(stat -c '%n %a' keys keys/*)"
cp keys/server.pub pub.before
sf-cat --keygen keys 2> e.txt && die "keygen over existing keys succeeded"
cmp -s keys/server.pub pub.before || die "keygen overwrote a key"
sf-cat --keygen other > /dev/null || die "second keygen failed"
cp keys/server.pub other/server.pub      # a stranger who knows the server's public key

# 2. a keyed stream with intruders: an unknown client key, a keyless client, random bytes
port=$((port+1))
timeout 30 sf-cat --keys keys --summary -i "tcp://@127.0.0.1:$port" > s.txt 2> r.err & rp=$!
(cat a.jsonl; sleep 5; exec cat b.jsonl) | SAEFLOW_ZMQ_KEYS=keys timeout 30 sf-cat --pack -o "tcp://127.0.0.1:$port" 2> w.err & wp=$!
sleep 0.5
timeout 20 "$PY" junk.py $port || die "random bytes could not be sent"
timeout 20 sf-cat --keys other --pack -i f8.jsonl -o "tcp://127.0.0.1:$port" 2> x.err; rc=$?
[ $rc = 1 ] && grep -q "refused: the binding side does not know this client key" x.err || die "unknown key: exit $rc: $(cat x.err)"
SAEFLOW_ZMQ_TIMEOUT=1 timeout 20 sf-cat --pack -i f8.jsonl -o "tcp://127.0.0.1:$port" 2> y.err; rc=$?
[ $rc = 1 ] || die "keyless client: exit $rc: $(cat y.err)"
kill -0 $rp 2>/dev/null || die "the reader did not outlive the intruders (test timing)"
wait $wp || die "legitimate writer failed: $(cat w.err)"
wait $rp || die "legitimate reader failed: $(cat r.err)"
[ "$(grep -c '^tokens' s.txt)" = 8 ] && grep -q '^end' s.txt || die "legitimate stream: $(grep -c '^tokens' s.txt) of 8 frames"
[ ! -s r.err ] && [ ! -s w.err ] || die "keyed stream printed: $(cat r.err w.err)"

# 3. with keys, binding a non-loopback address needs no --insecure (and says nothing)
port=$((port+1))
timeout 20 sf-cat --keys keys --check -i "tcp://@0.0.0.0:$port" 2> r3.err & rp=$!
timeout 20 sf-cat --keys keys --pack -i f8.jsonl -o "tcp://127.0.0.1:$port" 2> w3.err || die "keyed writer to @0.0.0.0 failed: $(cat w3.err)"
wait $rp || die "keyed reader on @0.0.0.0 failed: $(cat r3.err)"
[ ! -s r3.err ] || die "keyed non-loopback bind printed: $(cat r3.err)"

# 4. a reader with an unknown key cannot take a keyed writer's stream; the writer does not exit 0
port=$((port+1))
SAEFLOW_ZMQ_KEYS=keys timeout 20 sf-cat --pack -i f8.jsonl -o "tcp://@127.0.0.1:$port" 2> w4.err & wp=$!
timeout 20 sf-cat --keys other --check -i "tcp://127.0.0.1:$port" 2> r4.err; rc=$?
[ $rc = 1 ] && grep -q refused r4.err || die "unknown reader key: exit $rc: $(cat r4.err)"
wait $wp; rc=$?
[ $rc = 1 ] || die "keyed writer with only a refused reader: exit $rc: $(cat w4.err)"
echo "curve: keygen, stream completes past an unknown key, a keyless client and random bytes"

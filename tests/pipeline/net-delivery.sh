# ZeroMQ close handshake (PROTOCOL.md §2), loopback 127.0.0.1 and ipc://: a writer exits 0 only
# after its reader acknowledged the end frame. No reader, a reader killed or hung mid-stream, a
# reader that leaves early (--head): the writer exits 1 naming its endpoint. Both bind/connect
# directions and ipc:// deliver whole streams. Every wait is bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=2 SAEFLOW_ZMQ_HEARTBEAT=2
child() { local c i; for i in $(seq 20); do c=$(pgrep -P "$1" -x sf-cat) && { echo "$c"; return; }; sleep 0.1; done; die "no sf-cat under $1"; }
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
port=$((20000 + RANDOM % 30000))
mkframes 3 > f3.jsonl; mkframes 8 > f8.jsonl; head -4 f8.jsonl > a.jsonl; tail -n +5 f8.jsonl > b.jsonl

# 1. no reader: a short stream (fits the queues) is not "sent": exit 1 naming the endpoint
for ep in "tcp://127.0.0.1:$port" "ipc://$PWD/none"; do
  timeout 10 sf-cat --pack -i f3.jsonl -o "$ep" 2> w1.err; rc=$?
  [ $rc = 1 ] || die "no reader on $ep: exit $rc, want 1"
  grep -q "^sf-cat: error: $ep: timed out: waiting for a reader" w1.err || die "no reader on $ep: $(cat w1.err)"
done

# 2. whole streams: reader binds (tcp://@127.0.0.1), writer binds (reader connects), ipc://
check_pair() { # WHAT READER_EP WRITER_EP
  timeout 20 sf-cat --summary -i "$2" > s.txt 2> r.err & local rp=$!
  timeout 20 sf-cat --pack -i f8.jsonl -o "$3" 2> w.err || die "$1: writer failed: $(cat w.err)"
  wait $rp || die "$1: reader failed: $(cat r.err)"
  [ "$(grep -c '^tokens' s.txt)" = 8 ] && grep -q '^end' s.txt || die "$1: $(grep -c '^tokens' s.txt) of 8 frames"
}
port=$((port+1)); check_pair "reader binds" "tcp://@127.0.0.1:$port" "tcp://127.0.0.1:$port"
port=$((port+1)); check_pair "writer binds" "tcp://127.0.0.1:$port" "tcp://@127.0.0.1:$port"
check_pair "ipc" "ipc://$PWD/s" "ipc://$PWD/s"

# 3. the reader killed mid-stream: the writer exits 1 (peer gone), within seconds
port=$((port+1))
timeout 20 sf-cat --summary -i "tcp://@127.0.0.1:$port" > /dev/null & rp=$!; rc3=$(child $rp); pids+=($rc3)
(sleep 1; kill -9 $rc3) &
(cat a.jsonl; sleep 3; cat b.jsonl) | timeout 20 sf-cat --pack -o "tcp://127.0.0.1:$port" 2> w3.err; rc=${PIPESTATUS[1]}
[ $rc = 1 ] && grep -q "^sf-cat: error: tcp://127.0.0.1:$port: .*peer gone" w3.err || die "killed reader: writer exit $rc: $(cat w3.err)"
wait $rp 2>/dev/null

# 4. the reader hung (SIGSTOP) before the end: the writer exits 1 once heartbeats stop
port=$((port+1))
timeout 20 sf-cat --summary -i "tcp://@127.0.0.1:$port" > /dev/null & rp=$!; rc4=$(child $rp); pids+=($rc4)
(sleep 1; kill -STOP $rc4) &
(cat a.jsonl; sleep 2; cat b.jsonl) | timeout 20 sf-cat --pack -o "tcp://127.0.0.1:$port" 2> w4.err; rc=${PIPESTATUS[1]}
[ $rc = 1 ] && grep -q "peer gone" w4.err || die "hung reader: writer exit $rc: $(cat w4.err)"
kill -CONT $rc4; kill -9 $rc4; wait $rp 2>/dev/null

# 5. a reader that leaves early (--head 2) never saw the end: the writer exits 1
port=$((port+1))
timeout 20 sf-cat --head 2 -i "tcp://@127.0.0.1:$port" > /dev/null & rp=$!
(cat a.jsonl; sleep 1; cat b.jsonl) | timeout 20 sf-cat --pack -o "tcp://127.0.0.1:$port" 2> w5.err; rc=${PIPESTATUS[1]}
[ $rc = 1 ] && grep -q "peer gone" w5.err || die "--head reader: writer exit $rc: $(cat w5.err)"
wait $rp
echo "delivery: no reader, three link kinds, killed / hung / early-leaving reader"

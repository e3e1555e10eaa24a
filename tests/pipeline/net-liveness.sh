# ZeroMQ liveness (loopback, 127.0.0.1, random ports): a writer killed or hung (SIGSTOP, what a
# partition looks like to its reader) is reported by the reader within seconds as "peer gone"
# with the frames that got through; a slow but alive writer is never timed out; a reader with no
# writer at all times out ("timed out"). Every wait is bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=2 SAEFLOW_ZMQ_HEARTBEAT=2
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
port=$((20000 + RANDOM % 30000))
mkframes 8 > f8.jsonl; head -4 f8.jsonl > a.jsonl; tail -n +5 f8.jsonl > b.jsonl   # a: header + 3 frames
elapsed() { echo "$(( $(date +%s%N) / 1000000 - $1 ))"; }   # ms since $1
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
child() { local c i; for i in 1 2 3 4 5 6 7 8 9 10; do c=$(pgrep -P "$1" -x sf-cat) && { echo "$c"; return; }; sleep 0.1; done; die "no sf-cat under $1"; }   # the sf-cat under timeout(1)

# 1. writer killed after 3 of 8 frames: the reader exits 3 at once, naming the count
port=$((port+1))
timeout 20 sf-cat --check -i "tcp://@127.0.0.1:$port" 2> r1.err & rp=$!
(cat a.jsonl; exec sleep 30) | timeout 40 sf-cat --pack -o "tcp://127.0.0.1:$port" & wp=$!; pids+=($wp)
sleep 1; kill -9 "$(child $wp)"; t0=$(now_ms)
wait $rp; rc=$?; ms=$(elapsed $t0)
[ $rc = 3 ] || die "killed writer: reader exit $rc, want 3: $(cat r1.err)"
grep -q "peer gone.*after 3 of 8 frames" r1.err || die "killed writer: message: $(cat r1.err)"
[ $ms -lt 3000 ] || die "killed writer: noticed after $ms ms"
[ "$(wc -l < r1.err)" = 1 ] || die "killed writer: more than one line: $(cat r1.err)"

# 2. writer hung (SIGSTOP: no heartbeat answers, as in a partition): gone within heartbeat + 2 s
port=$((port+1))
timeout 20 sf-cat --check -i "tcp://@127.0.0.1:$port" 2> r2.err & rp=$!
(cat a.jsonl; exec sleep 30) | timeout 40 sf-cat --pack -o "tcp://127.0.0.1:$port" & wp=$!; pids+=($wp)
wc=$(child $wp); pids+=($wc); sleep 1; kill -STOP $wc; t0=$(now_ms)
wait $rp; rc=$?; ms=$(elapsed $t0)
kill -CONT $wc; kill -9 $wc
[ $rc = 3 ] && grep -q "peer gone.*after 3 of 8 frames" r2.err || die "hung writer: exit $rc: $(cat r2.err)"
[ $ms -lt 5000 ] || die "hung writer (heartbeat 2 s): noticed after $ms ms"

# 3. the default heartbeat (10 s): a hung writer is noticed within 15 s
port=$((port+1))
SAEFLOW_ZMQ_HEARTBEAT= timeout 30 sf-cat --check -i "tcp://@127.0.0.1:$port" 2> r3.err & rp=$!
(cat a.jsonl; exec sleep 40) | SAEFLOW_ZMQ_HEARTBEAT= timeout 50 sf-cat --pack -o "tcp://127.0.0.1:$port" & wp=$!; pids+=($wp)
wc=$(child $wp); pids+=($wc); sleep 1; kill -STOP $wc; t0=$(now_ms)
wait $rp; rc=$?; ms=$(elapsed $t0)
kill -CONT $wc; kill -9 $wc
[ $rc = 3 ] && grep -q "peer gone" r3.err || die "hung writer, default heartbeat: exit $rc: $(cat r3.err)"
[ $ms -lt 15000 ] || die "hung writer, default heartbeat: noticed after $ms ms"

# 4. a slow writer (6 s between frames, 3x the timeout): alive, so never timed out
port=$((port+1))
timeout 30 sf-cat --summary -i "tcp://@127.0.0.1:$port" > s4.txt 2> r4.err & rp=$!
(cat a.jsonl; sleep 6; cat b.jsonl) | timeout 30 sf-cat --pack -o "tcp://127.0.0.1:$port" 2> w4.err & wp=$!; pids+=($wp)
wait $rp || die "slow writer: reader failed: $(cat r4.err)"
wait $wp || die "slow writer: writer failed: $(cat w4.err)"
[ "$(grep -c '^tokens' s4.txt)" = 8 ] || die "slow writer: $(grep -c '^tokens' s4.txt) of 8 frames"

# 5. no writer at all: the reader times out after SAEFLOW_ZMQ_TIMEOUT, saying so
port=$((port+1))
t0=$(now_ms)
timeout 10 sf-cat --check -i "tcp://@127.0.0.1:$port" 2> r6.err; rc=$?; ms=$(elapsed $t0)
[ $rc = 1 ] && grep -q "timed out: waiting for a writer" r6.err || die "no writer: exit $rc: $(cat r6.err)"
[ $ms -ge 1900 ] && [ $ms -lt 5000 ] || die "no writer: gave up after $ms ms (SAEFLOW_ZMQ_TIMEOUT=2)"
echo "liveness: killed writer, hung writer (2 s and default heartbeat), slow writer, no writer"

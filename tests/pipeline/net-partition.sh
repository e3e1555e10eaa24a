# A real partition between two network namespaces (a veth pair made by the test; needs root and
# iproute2, else skipped): a reader in one, a CURVE-keyed writer in the other, the default
# liveness limit (10 s). The link down for 5 s and back: the stream completes. The link down for
# good: the reader exits 3 ("peer gone ... 3 of 8 frames") and the writer exits 1, both within
# 15 s. Namespaces and processes are removed on exit; every wait is bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip "network namespaces need root (the loopback tests cover the rest)"
command -v ip > /dev/null || skip "iproute2 (ip) missing"
export SAEFLOW_ZMQ_TIMEOUT=20
unset SAEFLOW_ZMQ_KEYS SAEFLOW_ZMQ_HEARTBEAT   # the default liveness limit, 10 s
n=sfp$$; a=${n}a; b=${n}b
cleanup() { pkill -9 -P $$ 2>/dev/null; ip netns pids $a 2>/dev/null | xargs -r kill -9; ip netns pids $b 2>/dev/null | xargs -r kill -9; ip netns del $a 2>/dev/null; ip netns del $b 2>/dev/null; }
trap cleanup EXIT
ip netns add $a 2>/dev/null && ip netns add $b 2>/dev/null || skip "ip netns add failed (no CAP_SYS_ADMIN here)"
ip link add ${n}x netns $a type veth peer name ${n}y netns $b || skip "cannot make a veth pair"
ip -n $a addr add 10.213.0.1/24 dev ${n}x && ip -n $b addr add 10.213.0.2/24 dev ${n}y || die "addresses"
for ns in $a $b; do ip -n $ns link set lo up; done
ip -n $a link set ${n}x up && ip -n $b link set ${n}y up || die "links up"
mkframes 8 > f8.jsonl; head -4 f8.jsonl > first.jsonl; tail -n +5 f8.jsonl > rest.jsonl
sf-cat --keygen keys > /dev/null || die "keygen"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
port=$((20000 + RANDOM % 30000))
in_a() { ip netns exec $a "$@"; }
in_b() { ip netns exec $b "$@"; }

# 1. down 5 s (under the 10 s limit), then up: the stream completes
in_a timeout 40 sf-cat --keys keys --summary -i "tcp://@10.213.0.1:$port" > s1.txt 2> r1.err & rp=$!
(cat first.jsonl; sleep 7; exec cat rest.jsonl) | in_b timeout 40 sf-cat --keys keys --pack -o "tcp://10.213.0.1:$port" 2> w1.err & wp=$!
sleep 1; ip -n $b link set ${n}y down; sleep 5; ip -n $b link set ${n}y up
wait $wp || die "short outage: writer failed: $(cat w1.err)"
wait $rp || die "short outage: reader failed: $(cat r1.err)"
[ "$(grep -c '^tokens' s1.txt)" = 8 ] || die "short outage: $(grep -c '^tokens' s1.txt) of 8 frames"

# 2. down for good after 3 frames: both sides fail within 15 s (the 10 s limit), the reader with the count
port=$((port+1))
in_a timeout 40 sf-cat --keys keys --check -i "tcp://@10.213.0.1:$port" 2> r2.err & rp=$!
(cat first.jsonl; sleep 2; exec cat rest.jsonl) | in_b timeout 40 sf-cat --keys keys --pack -o "tcp://10.213.0.1:$port" 2> w2.err & wp=$!
sleep 1; ip -n $b link set ${n}y down; t0=$(now_ms)
wait $rp; rrc=$?; rms=$(( $(now_ms) - t0 ))
wait $wp; wrc=$?; wms=$(( $(now_ms) - t0 ))
[ $rrc = 3 ] && grep -q "peer gone.*after 3 of 8 frames" r2.err || die "partition: reader exit $rrc: $(cat r2.err)"
[ $wrc = 1 ] && grep -q "peer gone" w2.err || die "partition: writer exit $wrc: $(cat w2.err)"
[ $rms -lt 15000 ] && [ $wms -lt 15000 ] || die "partition noticed after $rms ms (reader), $wms ms (writer); limit 10 s, 15 s allowed"
echo "partition (namespaces $a/$b, veth): 5 s outage survived; a lasting one noticed in $rms / $wms ms"

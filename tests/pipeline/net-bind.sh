# Bind vs connect and exposure (loopback only; no traffic leaves the host): tcp://@ADDR:P binds
# ADDR and nothing else; without keys a bind to a non-loopback address (tcp://*:P, @0.0.0.0,
# the host's own address) exits 2 with one line, for -i, -o and a stage's other endpoints;
# --insecure allows it and says so once on stderr.
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=5
unset SAEFLOW_ZMQ_KEYS
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
port=$((20000 + RANDOM % 30000))
echo '{"sf":1,"kind":"header","meta":{}}' > f.jsonl
echo '{"sf":1,"kind":"end","frames":0,"rows":0}' >> f.jsonl
listening() { ss -Hltn "sport = :$1" | awk '{print $4}'; }   # local address:port of a listener
wait_listen() { local i; for i in $(seq 50); do [ -n "$(listening "$1")" ] && return 0; sleep 0.1; done; return 1; }

# 1. refused without keys: exit 2, one line naming the endpoint
host=$(ip -4 -br addr 2>/dev/null | awk '$1 != "lo" {split($3, a, "/"); print a[1]; exit}')
for ep in "tcp://*:$port" "tcp://@0.0.0.0:$port" ${host:+"tcp://@$host:$port"}; do
  timeout 10 sf-cat --check -i "$ep" 2> e.txt; rc=$?
  [ $rc = 2 ] || die "$ep as input: exit $rc, want 2"
  [ "$(wc -l < e.txt)" = 1 ] && grep -qF "sf-cat: error: $ep: binds a non-loopback address without keys" e.txt || die "$ep: message: $(cat e.txt)"
  timeout 10 sf-cat --pack -i f.jsonl -o "$ep" 2> e.txt; rc=$?
  [ $rc = 2 ] && [ "$(wc -l < e.txt)" = 1 ] || die "$ep as output: exit $rc: $(cat e.txt)"
done
timeout 10 sf-compare --base "tcp://*:$port" --finetune "tcp://127.0.0.1:$((port+1))" > /dev/null 2> e.txt; rc=$?
[ $rc = 2 ] && [ "$(wc -l < e.txt)" = 1 ] || die "sf-compare --base tcp://*: exit $rc: $(cat e.txt)"
[ -z "$(listening $port)" ] || die "a refused endpoint was bound"

# 2. tcp://@127.0.0.1:P binds loopback only, and the stream goes through
port=$((port+2))
timeout 20 sf-cat --summary -i "tcp://@127.0.0.1:$port" > s.txt 2> r.err & rp=$!
wait_listen $port || die "tcp://@127.0.0.1:$port: nothing listens"
[ "$(listening $port)" = "127.0.0.1:$port" ] || die "tcp://@127.0.0.1:$port listens on $(listening $port)"
timeout 20 sf-cat --pack -i f.jsonl -o "tcp://127.0.0.1:$port" || die "writer to @127.0.0.1 failed"
wait $rp || die "reader on @127.0.0.1 failed: $(cat r.err)"
[ ! -s r.err ] || die "loopback bind printed: $(cat r.err)"

# 3. --insecure: tcp://*:P binds every interface, one warning line, the stream goes through
port=$((port+1))
timeout 20 sf-cat --insecure --summary -i "tcp://*:$port" > s.txt 2> r.err & rp=$!
wait_listen $port || die "tcp://*:$port: nothing listens"
case "$(listening $port)" in 0.0.0.0:$port|\*:$port) ;; *) die "tcp://*:$port listens on $(listening $port)" ;; esac
timeout 20 sf-cat --pack -i f.jsonl -o "tcp://127.0.0.1:$port" || die "writer to tcp://* failed"
wait $rp || die "--insecure reader failed: $(cat r.err)"
[ "$(wc -l < r.err)" = 1 ] && grep -q "^sf-cat: warning: --insecure: " r.err || die "--insecure: stderr: $(cat r.err)"

# 4. a writer may bind too (the reader connects): -o tcp://@127.0.0.1:P
port=$((port+1))
timeout 20 sf-cat --pack -i f.jsonl -o "tcp://@127.0.0.1:$port" 2> w.err & wp=$!
timeout 20 sf-cat --check -i "tcp://127.0.0.1:$port" || die "reader of a binding writer failed"
wait $wp || die "binding writer failed: $(cat w.err)"
echo "bind: @ADDR binds ADDR only; keyless non-loopback binds refused (exit 2); --insecure warns once"

# ZeroMQ endpoints carry whole streams without loss: 60 small frames (the writer sits at its
# high-water mark) over ipc:// and tcp://, several times, one and two streams per reader.
source "$SF_ROOT/tests/lib.sh"
gen="$SF_BUILD/bench/frame-gen"
[ -x "$gen" ] || die "missing $gen (make builds it)"
export SAEFLOW_ZMQ_TIMEOUT=10
for i in 1 2 3 4 5; do
  "$gen" "ipc://$PWD/a$i" 60 2 16 8 & p=$!
  sf-cat --summary -i "ipc://$PWD/a$i" > s.txt || die "ipc run $i: sf-cat failed"
  wait $p || die "ipc run $i: writer failed"
  [ "$(grep -c '^acts' s.txt)" = 60 ] || die "ipc run $i: $(grep -c '^acts' s.txt) of 60 frames"
done
for i in 1 2 3; do   # one reader, two ipc streams (what sf-compare and sf-reduce do)
  "$gen" "ipc://$PWD/b$i" 60 2 16 8 & p1=$!
  "$gen" "ipc://$PWD/c$i" 60 2 16 8 & p2=$!
  sf-compare --base "ipc://$PWD/b$i" --finetune "ipc://$PWD/c$i" | sf-cat --summary > s.txt || die "two streams run $i failed"
  wait $p1 && wait $p2 || die "two streams run $i: a writer failed"
  [ "$(grep -c '^sim' s.txt)" = 60 ] || die "two streams run $i: $(grep -c '^sim' s.txt) of 60 frames"
done
port=$((20000 + RANDOM % 30000))
sf-cat --insecure -q --summary -i "tcp://*:$port" > t.txt & p=$!
"$gen" "tcp://127.0.0.1:$port" 60 2 16 8 || die "tcp writer failed"
wait $p || die "tcp reader failed"
[ "$(grep -c '^acts' t.txt)" = 60 ] || die "tcp: $(grep -c '^acts' t.txt) of 60 frames"
echo "zmq streams complete"

#!/usr/bin/env bash
# pipelines/split.sh (issue 14): the transfer study with its stages placed on three hosts — three
# network namespaces on a bridge, made by the test (root and iproute2, else skipped), the stages
# started with 'ip netns exec' as the launcher, every link tcp:// between them with CURVE keys —
# gives transfer.sh's one-host result.json on every number, bit for bit (tokenizer and reduce on
# h1, both forwards and the loss passes on h2, outliers and encode on h3). Then with the encode
# host's stage killed mid-run, every stage ends within 20 s, split.sh exits non-zero naming a
# stage, and no result.json is left. Namespaces and processes are removed on exit.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
[ "$(id -u)" = 0 ] || skip "network namespaces need root (pipelines/split.sh over loopback is the same code)"
command -v ip > /dev/null || skip "iproute2 (ip) missing"
F=$SF_FIXTURES; M=$F/models
n=sfs$$
cleanup() {
  local i
  for i in 1 2 3 b; do ip netns pids $n$i 2>/dev/null | xargs -r kill -9; ip netns del $n$i 2>/dev/null; done
}
trap cleanup EXIT
ip netns add ${n}b || skip "cannot make a network namespace here"
ip -n ${n}b link add br0 type bridge && ip -n ${n}b link set br0 up || die "bridge"
for i in 1 2 3; do
  ip netns add $n$i && ip link add ${n}v$i type veth peer name ${n}e$i &&
    ip link set ${n}v$i netns $n$i && ip link set ${n}e$i netns ${n}b &&
    ip -n ${n}b link set ${n}e$i master br0 && ip -n ${n}b link set ${n}e$i up &&
    ip -n $n$i addr add 10.77.0.$i/24 dev ${n}v$i && ip -n $n$i link set ${n}v$i up && ip -n $n$i link set lo up ||
    die "namespace $n$i"
done
sf-cat --keygen keys || die "keygen"
export SAEFLOW_ZMQ_TIMEOUT=30 SAEFLOW_ZMQ_HEARTBEAT=4
STUDY=(--base "$M/stories260k" --finetune "$M/stories260k-ft-code" --sae "$F/saes/stories260k-L2-relu"
       --data "$F/data/stories.jsonl" --tokens 8192 --outlier-multiplier 2 --ablate --no-report)
PLACE=(--launch "ip netns exec {host}" --place "tokenize=${n}1,reduce=${n}1,forward=${n}2,loss=${n}2,encode=${n}3"
       --addr "${n}1=10.77.0.1,${n}2=10.77.0.2,${n}3=10.77.0.3" --keys keys --port-base 5800)
"$SF_ROOT/pipelines/transfer.sh" "${STUDY[@]}" --out one 2> one.err || { cat one.err; die "transfer.sh failed"; }
timeout 120 "$SF_ROOT/pipelines/split.sh" "${PLACE[@]}" "${STUDY[@]}" --out split 2> split.err ||
  { cat split.err; die "split.sh failed"; }
"$PY" - <<'PY' || exit 1
import json, sys, sfstream
a, b = json.load(open("one/result.json")), json.load(open("split/result.json"))
n, worst, bad = sfstream.compare_docs(a, b, 0.0, sfstream.DOC_SKIP | {"tokenizer"})
print(n, "numbers compared", *bad[:5])
sys.exit(1 if bad or n < 10000 else 0)
PY
# a stage killed on h3: all of it ends, named, no result
# the killer waits for the encode host's stages to run (after the outlier estimate), then 0.5 s
( for _ in $(seq 1 600); do [ -n "$(ip netns pids ${n}3)" ] && break; sleep 0.1; done
  sleep 0.5; date +%s > killed.at; ip netns pids ${n}3 | xargs -r kill -9 ) &
timeout 120 "$SF_ROOT/pipelines/split.sh" "${PLACE[@]}" "${STUDY[@]}" --tokens 65536 --out killed 2> killed.err; rc=$?
end=$(date +%s)
wait
[ -f killed.at ] || die "the encode host's stages never started"
[ $rc != 0 ] && [ $rc != 124 ] || { cat killed.err; die "split.sh with a killed stage: exit $rc"; }
took=$(( end - $(cat killed.at) ))
[ $took -le 20 ] || die "the stages took $took s to stop after the kill"
grep -q "split.sh: error: stage .* failed" killed.err || { cat killed.err; die "no stage named"; }
[ ! -e killed/result.json ] || die "a result.json after a failed run"
[ -z "$(ip netns pids ${n}1; ip netns pids ${n}2; ip netns pids ${n}3)" ] || die "stages still running in the namespaces"

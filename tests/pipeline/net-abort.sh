# Abort frames (PROTOCOL.md §2): a failing stage tells its neighbours, so every stage of a split
# run exits within seconds, each naming the stage that failed first and the frames that got
# through. A chain producer -> sf-stage-a -> sf-stage-b -> checker over tcp:// on loopback
# (127.0.0.1, random ports; the relays are sf-cat --hook under other names, so the messages can
# name them), then the same over pipes. Every wait is bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=5 SAEFLOW_ZMQ_HEARTBEAT=2
mkdir -p bin; ln -sf "$(command -v sf-cat)" bin/sf-stage-a; ln -sf "$(command -v sf-cat)" bin/sf-stage-b
export PATH="$PWD/bin:$PATH"
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
H=blocks.0.hook_resid_post   # tokens frames carry no hook: --hook passes them all
mkframes 8 > f8.jsonl; head -4 f8.jsonl > a.jsonl; tail -n +5 f8.jsonl > b.jsonl   # a: header + 3 frames
sed 's/"seq":4,/"seq":5,/' f8.jsonl > gap.jsonl                                     # frame 4 is refused
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
child() { local c i; for i in $(seq 30); do c=$(pgrep -P "$1" -x "$2") && { echo "$c"; return; }; sleep 0.1; done; die "no $2 under $1"; }
port=$((20000 + RANDOM % 30000))
chain() { # PRODUCER_CMD...: starts a, b and the checker on fresh ports, then the producer (pid wp)
  p1=$((port+1)) p2=$((port+2)) p3=$((port+3)); port=$((port+3))
  timeout 30 sf-stage-a --hook $H -i "tcp://@127.0.0.1:$p1" -o "tcp://127.0.0.1:$p2" 2> a.err & ap=$!
  timeout 30 sf-stage-b --hook $H -i "tcp://@127.0.0.1:$p2" -o "tcp://127.0.0.1:$p3" 2> b.err & bp=$!
  timeout 30 sf-cat --check -i "tcp://@127.0.0.1:$p3" 2> c.err & cp=$!
}
waitall() { wait $ap; arc=$?; wait $bp; brc=$?; wait $cp; crc=$?; wait $wp; wrc=$?; }

# 1. sf-stage-a fails at frame 4 (a seq gap): b and the checker exit 3 naming sf-stage-a and 4
#    frames, the producer exits 1 naming its reader's failure; all within a few seconds
chain; t0=$(now_ms)
timeout 30 sf-cat --pack -i gap.jsonl -o "tcp://127.0.0.1:$p1" 2> w.err & wp=$!
waitall; ms=$(( $(now_ms) - t0 ))
[ $arc = 1 ] && grep -q "^sf-stage-a: error: .*frame seq 5, expected 4" a.err || die "failing a: exit $arc: $(cat a.err)"
[ $brc = 3 ] && grep -q "^sf-stage-b: error: tcp://@127.0.0.1:$p2: .*upstream sf-stage-a failed after 4 frames: .*frame seq 5, expected 4" b.err || die "failing a: b exit $brc: $(cat b.err)"
[ $crc = 3 ] && grep -q "^sf-cat: error: .*upstream sf-stage-a failed after 4 frames: .*frame seq 5" c.err || die "failing a: checker exit $crc: $(cat c.err)"
[ $wrc = 1 ] && grep -q "peer gone: downstream sf-stage-a left after 4 frames: .*frame seq 5" w.err || die "failing a: producer exit $wrc: $(cat w.err)"
[ $ms -lt 8000 ] || die "failing a: the chain took $ms ms to stop"
for f in a b c w; do [ "$(wc -l < $f.err)" = 1 ] || die "more than one line from $f: $(cat $f.err)"; done

# 2. sf-stage-a killed (kill -9) after 3 frames: b exits 3 (peer gone, 3 of 8 frames), the
#    checker exits 3 naming sf-stage-a, the producer exits 1 at its next frame
chain
(cat a.jsonl; sleep 2; exec cat b.jsonl) | timeout 30 sf-cat --pack -o "tcp://127.0.0.1:$p1" 2> w.err & wp=$!
sleep 1; kill -9 "$(child $ap sf-stage-a)"; t0=$(now_ms)
waitall; ms=$(( $(now_ms) - t0 ))
[ $brc = 3 ] && grep -q "peer gone: the writer (sf-stage-a) disconnected .*after 3 of 8 frames" b.err || die "killed a: b exit $brc: $(cat b.err)"
[ $crc = 3 ] && grep -q "upstream sf-stage-a failed after 3 frames: disconnected .*after 3 of 8 frames" c.err || die "killed a: checker exit $crc: $(cat c.err)"
[ $wrc = 1 ] && grep -q "peer gone" w.err || die "killed a: producer exit $wrc: $(cat w.err)"
[ $ms -lt 6000 ] || die "killed a: the chain took $ms ms to stop"

# 3. sf-stage-a hung (SIGSTOP, as a host cut off looks): b notices within the heartbeat and the
#    checker hears it from b, naming sf-stage-a
chain
(cat a.jsonl; exec sleep 30) | timeout 30 sf-cat --pack -o "tcp://127.0.0.1:$p1" 2> w.err & wp=$!; pids+=($wp)
ac=$(child $ap sf-stage-a); pids+=($ac); sleep 1; kill -STOP $ac; t0=$(now_ms)
wait $bp; brc=$?; wait $cp; crc=$?; ms=$(( $(now_ms) - t0 ))
kill -9 $ac; kill -CONT $ac; wait $ap; kill -9 "$(child $wp sf-cat)" 2>/dev/null; wait $wp
[ $brc = 3 ] && [ $crc = 3 ] && grep -q "upstream sf-stage-a failed after 3 frames" c.err || die "hung a: b $brc, checker $crc: $(cat b.err c.err)"
[ $ms -lt 6000 ] || die "hung a (heartbeat 2 s): noticed after $ms ms"

# 4. the last reader leaves early (--head 2): sf-stage-b's writer hears it, and so does every
#    stage above it, each naming the checker's stage
p1=$((port+1)) p2=$((port+2)) p3=$((port+3)); port=$((port+3))
timeout 30 sf-stage-a --hook $H -i "tcp://@127.0.0.1:$p1" -o "tcp://127.0.0.1:$p2" 2> a.err & ap=$!
timeout 30 sf-stage-b --hook $H -i "tcp://@127.0.0.1:$p2" -o "tcp://127.0.0.1:$p3" 2> b.err & bp=$!
timeout 30 sf-cat --head 2 -i "tcp://@127.0.0.1:$p3" > /dev/null 2> c.err & cp=$!
(cat a.jsonl; sleep 1; exec cat b.jsonl) | timeout 30 sf-cat --pack -o "tcp://127.0.0.1:$p1" 2> w.err & wp=$!
waitall
[ $crc = 0 ] || die "--head: checker exit $crc: $(cat c.err)"
for s in b a w; do grep -q "peer gone: downstream sf-cat left after [0-9]* frames: it stopped reading before the end frame" $s.err || die "--head: $s: $(cat $s.err)"; done
[ $arc = 1 ] && [ $brc = 1 ] && [ $wrc = 1 ] || die "--head: exits a $arc, b $brc, producer $wrc (want 1)"

# 5. pipes carry the abort frame too: the stages below name sf-stage-a (exit 3); a stream saved
#    from stdout ends with it; -o FILE of a failing stage leaves no file
sf-cat --pack -i gap.jsonl | sf-stage-a --hook $H 2> a.err | sf-stage-b --hook $H 2> b.err | sf-cat --check 2> c.err
rcs="${PIPESTATUS[*]}"
[ "$rcs" = "0 1 3 3" ] || die "pipes: exits $rcs, want 0 1 3 3: $(cat a.err b.err c.err)"
grep -q "^sf-stage-b: error: -: .*upstream sf-stage-a failed after 4 frames: -: .*frame seq 5, expected 4" b.err || die "pipes: b: $(cat b.err)"
grep -q "upstream sf-stage-a failed after 4 frames" c.err || die "pipes: checker: $(cat c.err)"
sf-cat --pack -i gap.jsonl | sf-stage-a --hook $H > saved.sf 2> /dev/null
sf-cat --summary -i saved.sf > saved.txt 2> saved.err; rc=$?
[ $rc = 3 ] && [ "$(grep -c '^tokens' saved.txt)" = 4 ] && grep -q "upstream sf-stage-a failed after 4 frames" saved.err || die "saved stream: exit $rc: $(cat saved.err)"
sf-cat --pack -i gap.jsonl | sf-stage-a --hook $H -o kept.sf 2> /dev/null
[ ! -e kept.sf ] || die "a failing stage left -o kept.sf"

# 6. the real stages split over tcp:// (loopback; fixtures needed): sf-tokenize -> sf-forward ->
#    sf-encode -> sf-reduce, sf-forward killed mid-stream. Every other stage exits within 15 s:
#    sf-encode 3 and sf-reduce 3 naming sf-forward and the frames, sf-tokenize 1; no result.
real=""
if [ -n "${SF_FIXTURES:-}" ] && [ -d "$SF_FIXTURES/models/stories260k" ]; then
  F=$SF_FIXTURES; M=$F/models/stories260k
  p1=$((port+1)) p2=$((port+2)) p3=$((port+3)); port=$((port+3))
  timeout 60 sf-reduce -q -i "tcp://@127.0.0.1:$p3" -o m.json 2> red.err & redp=$!
  timeout 60 sf-encode --sae "$F/saes/stories260k-L2-relu" -q -i "tcp://@127.0.0.1:$p2" -o "tcp://127.0.0.1:$p3" 2> enc.err & encp=$!
  timeout 60 sf-forward --model "$M" --hook blocks.2.hook_resid_post -q -i "tcp://@127.0.0.1:$p1" -o "tcp://127.0.0.1:$p2" 2> fwd.err & fwdp=$!
  timeout 60 sf-tokenize --tokenizer "$M" --ctx 128 --rows 128 --max-tokens $((24 * 128 * 128)) -q "$F/data/stories.jsonl" -o "tcp://127.0.0.1:$p1" 2> tok.err & tokp=$!
  # mid-stream: 24 frames of 128 x 128 tokens take seconds even on an idle machine (an ASan build
  # starts and runs slower: its first frame needs longer)
  fwd=$(child $fwdp sf-forward); sleep "$([ "${SF_ASAN:-0}" = 1 ] && echo 3 || echo 0.8)"; kill -9 "$fwd"; t0=$(now_ms)
  wait $encp; erc=$?; wait $redp; rrc=$?; wait $tokp; trc=$?; ms=$(( $(now_ms) - t0 )); wait $fwdp
  [ $erc = 3 ] && grep -q "^sf-encode: error: .*peer gone: the writer (sf-forward) disconnected .*after [0-9]* of 24 frames" enc.err || die "real stages: sf-encode exit $erc: $(cat enc.err)"
  [ $rrc = 3 ] && grep -q "^sf-reduce: error: .*upstream sf-forward failed after [0-9]* frames: disconnected .*of 24 frames" red.err || die "real stages: sf-reduce exit $rrc: $(cat red.err)"
  [ $trc = 1 ] && grep -q "^sf-tokenize: error: .*peer gone" tok.err || die "real stages: sf-tokenize exit $trc: $(cat tok.err)"
  [ ! -e m.json ] || die "real stages: sf-reduce wrote m.json"
  [ $ms -lt 15000 ] || die "real stages: the others took $ms ms to stop"
  real="; the real stages stop ${ms} ms after sf-forward is killed ($(grep -o 'after [0-9]* of 24' enc.err))"
else real="; real stages skipped (no ../shared/fixtures)"; fi
echo "abort: failing, killed and hung stage over tcp://, an early-leaving reader, pipes; every stage names the one that failed$real"

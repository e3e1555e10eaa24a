# Fan-out without a relay (PROTOCOL.md §1 -o, §2): -o given several times sends every frame to
# each endpoint: two tcp:// readers (loopback 127.0.0.1, random ports), a file and a pipe get
# identical streams, and the writer exits 0 only when each got the whole of it (both readers
# acknowledged). One reader killed mid-stream: the writer exits 1 naming it, the file is not
# kept, the other endpoints hear an abort frame (exit 3). Every wait is bounded by timeout(1).
source "$SF_ROOT/tests/lib.sh"
export SAEFLOW_ZMQ_TIMEOUT=5 SAEFLOW_ZMQ_HEARTBEAT=2
cleanup() { pkill -9 -P $$ 2>/dev/null; }
trap cleanup EXIT
H=blocks.0.hook_resid_post   # sf-cat --hook H: a frame writer (put, checksums) that passes tokens frames
mkframes 8 > f8.jsonl; head -4 f8.jsonl > a.jsonl; tail -n +5 f8.jsonl > b.jsonl
sf-cat --pack -i f8.jsonl | sf-cat --hook $H -o ref.sf || die "reference stream"
sf-cat -i ref.sf > ref.json || die "reference json"
port=$((20000 + RANDOM % 30000)); p1=$((port+1)) p2=$((port+2))

# 1. two tcp readers, a file and stdout (a pipe): four identical streams, every exit 0
timeout 20 sf-cat -i "tcp://@127.0.0.1:$p1" > r1.json 2> r1.err & r1=$!
timeout 20 sf-cat -i "tcp://@127.0.0.1:$p2" > r2.json 2> r2.err & r2=$!
sf-cat --pack -i f8.jsonl | timeout 20 sf-cat --hook $H -o "tcp://127.0.0.1:$p1" -o "tcp://127.0.0.1:$p2" -o out.sf -o - 2> w.err | sf-cat > pipe.json
rcs="${PIPESTATUS[*]}"
[ "$rcs" = "0 0 0" ] || die "fan-out: exits $rcs: $(cat w.err)"
wait $r1 || die "reader 1: $(cat r1.err)"; wait $r2 || die "reader 2: $(cat r2.err)"
sf-cat -i out.sf > file.json || die "file: not a whole stream"
for f in r2 file pipe; do cmp -s r1.json $f.json || die "$f differs from tcp reader 1"; done
cmp -s <(tail -n +2 ref.json) <(tail -n +2 r1.json) || die "frames differ from the single-output stream's"   # headers: args differ
[ "$(grep -c '"kind":"tokens"' r1.json)" = 8 ] || die "8 frames expected"

# 2. one reader killed after 3 frames: the writer exits 1 naming that endpoint; no out.sf; the
#    other reader and the pipe hear an abort frame naming the writer (exit 3)
rm -f out.sf; p1=$((port+3)) p2=$((port+4))
timeout 20 sf-cat --summary -i "tcp://@127.0.0.1:$p1" > /dev/null 2> r1.err & r1=$!
timeout 20 sf-cat --check -i "tcp://@127.0.0.1:$p2" 2> r2.err & r2=$!
(sleep 1; kill -9 "$(pgrep -P $r1 -x sf-cat)") &
(sf-cat --pack -i a.jsonl; sleep 2; sf-cat --pack -i b.jsonl) 2>/dev/null | timeout 20 sf-cat --hook $H -o "tcp://127.0.0.1:$p1" -o "tcp://127.0.0.1:$p2" -o out.sf -o - 2> w.err | sf-cat --check 2> pipe.err
rcs="${PIPESTATUS[*]}"
[ "${rcs#* }" = "1 3" ] || die "killed reader: writer and pipe reader exit ${rcs#* }, want 1 3: $(cat w.err pipe.err)"
grep -q "^sf-cat: error: tcp://127.0.0.1:$p1 + tcp://127.0.0.1:$p2 + out.sf + -: .*tcp://127.0.0.1:$p1: peer gone" w.err || die "killed reader: writer said: $(cat w.err)"
wait $r2; rc=$?
[ $rc = 3 ] && grep -q "upstream sf-cat failed after 3 frames: .*tcp://127.0.0.1:$p1: peer gone" r2.err || die "killed reader: other reader exit $rc: $(cat r2.err)"
grep -q "upstream sf-cat failed after 3 frames" pipe.err || die "killed reader: pipe: $(cat pipe.err)"
[ ! -e out.sf ] || die "killed reader: out.sf kept though a reader lost the stream"
wait $r1 2>/dev/null

# 3. usage: several -o where the output is not frames, or the same output twice: exit 2
sf-cat -i ref.sf -o x.json -o y.json 2> u1.err; rc=$?
[ $rc = 2 ] && grep -q "only a stream of frames fans out" u1.err || die "JSON to two -o: exit $rc: $(cat u1.err)"
touch z.sf; sf-cat --hook $H -i ref.sf -o z.sf -o ./z.sf 2> u2.err; rc=$?
[ $rc = 2 ] && grep -q "given twice" u2.err || die "same file twice: exit $rc: $(cat u2.err)"
sf-cat --hook $H -i ref.sf -o z.sf -o ref.sf 2> u3.err; rc=$?
[ $rc = 2 ] && grep -q "same file as the input" u3.err || die "output = input among several: exit $rc: $(cat u3.err)"
echo "fan-out: 2 tcp readers + file + pipe identical; a killed reader fails the writer, the others hear why"

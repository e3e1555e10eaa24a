#!/usr/bin/env bash
# OpenBLAS kernel choice (proto/blas.c): with detection faked to Prescott (SAEFLOW_BLAS_FAKE_CORE)
# a stage re-executes itself once with the CPU's best kernel (-v names it) and a piped stdin
# survives the re-exec (output bytes equal to the plain run); a user's OPENBLAS_CORETYPE wins
# over the fake; a chosen kernel that fails the self-check (SAEFLOW_BLAS_FAKE_WRONG=1) is
# refused with one warning and the run still succeeds with the same output; under valgrind
# there is no re-exec and the run is clean; OpenBLAS's idle threads are set to sleep at once
# (OPENBLAS_THREAD_TIMEOUT=4, -v says so) unless the user set a timeout or SAEFLOW_BLAS_AUTO=0.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
[ "${VALGRIND:-0}" = 1 ] && skip "re-exec is off under valgrind by design; the plain run tests it"
has() { local f; for f in "$@"; do grep -m1 '^flags' /proc/cpuinfo | grep -qw -- "$f" || return 1; done; }
best=""
has avx2 fma && best=Haswell
has avx512f avx512dq avx512bw avx512vl && best=SkylakeX
[ "$best" = SkylakeX ] && has avx512_bf16 && best=Cooperlake
[ -n "$best" ] || skip "this CPU has no AVX2+FMA: no better kernel than OpenBLAS's to choose"
F=$SF_FIXTURES
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' \
  '{"sf":1,"kind":"tokens","seq":0,"tokens":{"dtype":"i32","shape":[2,8],"data":[1,5,7,9,11,13,15,17,1,8,9,10,20,30,40,50]}}' \
  '{"sf":1,"kind":"end","frames":1,"rows":2}' | sf-cat --pack > tok.sf || die "sf-cat --pack"
run() { # run ENV... : forward + encode through pipes, stdin of the first stage is a pipe
  cat tok.sf | env "$@" sf-forward -v --model "$F/models/stories260k" --hook blocks.2.hook_resid_post 2>> err.txt |
    env "$@" sf-encode --sae "$F/saes/stories260k-L2-relu" 2>> err.txt | sf-cat > out.jsonl
}
body() { grep -v -e '"kind":"header"' -e '"kind":"end"' out.jsonl; }   # no header args, no end timings
: > err.txt; run SAEFLOW_BLAS_NONE=1 || { cat err.txt; die "plain run failed"; }
body > plain.jsonl; [ -s plain.jsonl ] || die "plain run wrote nothing"
: > err.txt; run SAEFLOW_BLAS_AUTO=0 || { cat err.txt; die "run with OpenBLAS's own kernel failed"; }
body > own.jsonl   # differs from plain.jsonl only where OpenBLAS misdetects this CPU
# 1. faked Prescott: re-exec with the best kernel, same bytes through the pipes
: > err.txt; run SAEFLOW_BLAS_FAKE_CORE=Prescott || { cat err.txt; die "faked Prescott: run failed"; }
grep -q "sf-forward: BLAS kernel $best (chosen from the CPU features; OpenBLAS detected Prescott)" err.txt ||
  { cat err.txt; die "faked Prescott: -v does not name $best as chosen"; }
body | cmp -s - plain.jsonl || die "faked Prescott: output differs from the plain run"
# 2. the user's OPENBLAS_CORETYPE wins (no re-exec even with the fake)
: > err.txt; run OPENBLAS_CORETYPE=Haswell SAEFLOW_BLAS_FAKE_CORE=Prescott || { cat err.txt; die "user kernel: run failed"; }
grep -q "sf-forward: BLAS kernel Haswell (OPENBLAS_CORETYPE=Haswell)" err.txt || { cat err.txt; die "user kernel: -v does not name Haswell"; }
# 3. the chosen kernel computes wrong: refused with a warning, the run succeeds on OpenBLAS's own
: > err.txt; run SAEFLOW_BLAS_FAKE_CORE=Prescott SAEFLOW_BLAS_FAKE_WRONG=1 || { cat err.txt; die "wrong kernel: run failed"; }
grep -q "sf-forward: warning: BLAS self-check: kernel $best computes wrong results on this CPU (sgemm 64x96x80 is off by .* relative); falling back to OpenBLAS's default" err.txt ||
  { cat err.txt; die "wrong kernel: no refusal warning"; }
[ "$(grep -c 'warning' err.txt)" = 2 ] || { cat err.txt; die "wrong kernel: expected one warning per stage"; }
grep -q "sf-forward: BLAS kernel .* (OpenBLAS's own; $best failed the self-check)" err.txt || { cat err.txt; die "wrong kernel: -v does not say it fell back"; }
body | cmp -s - own.jsonl || die "wrong kernel: output differs from the run with OpenBLAS's own kernel"
# 4. valgrind: no re-exec (it would leave valgrind), still clean
if ! command -v valgrind > /dev/null || [ "${SF_ASAN:-0}" = 1 ]; then
  echo "no valgrind part: valgrind missing or an ASan build"
elif ! valgrind -q sf-cat --version > /dev/null 2>&1; then
  echo "no valgrind part: valgrind cannot run these binaries (make native? proto-valgrind tests that)"
else
  SAEFLOW_BLAS_FAKE_CORE=Prescott valgrind -q --error-exitcode=99 sf-reduce -v -i tok.sf > /dev/null 2> vg.txt ||
    { cat vg.txt; die "valgrind with faked Prescott failed"; }
  grep -q "BLAS kernel .* (OpenBLAS's own choice)" vg.txt || { cat vg.txt; die "valgrind: expected OpenBLAS's own kernel"; }
fi
# 5. the idle spin: ours (4) by default, the user's value kept, none with SAEFLOW_BLAS_AUTO=0
spin() { env "$@" sf-forward -v --model "$F/models/stories260k" --hook blocks.2.hook_resid_post -i tok.sf -o /dev/null 2>&1 | grep 'BLAS kernel'; }
if [ "$(nproc)" -gt 1 ]; then
  spin SAEFLOW_BLAS_NONE=1 | grep -q 'idle threads spin 2^4 cycles (OPENBLAS_THREAD_TIMEOUT)$' || die "default: -v does not show the timeout: $(spin)"
fi
spin OPENBLAS_THREAD_TIMEOUT=20 | grep -q 'idle threads spin 2^20 cycles' || die "the user's OPENBLAS_THREAD_TIMEOUT was not kept: $(spin OPENBLAS_THREAD_TIMEOUT=20)"
! spin SAEFLOW_BLAS_AUTO=0 | grep -q 'idle threads' || die "SAEFLOW_BLAS_AUTO=0 still set a timeout"
#    and the re-executed stage keeps its name (ps, pgrep -x; not "exe" from /proc/self/exe)
mkfifo hold.fifo
sf-forward --model "$F/models/stories260k" --hook blocks.2.hook_resid_post -q -i hold.fifo -o /dev/null 2> /dev/null & fp=$!
exec 9> hold.fifo; sleep 0.5; comm=$(cat /proc/$fp/comm); exec 9>&-; wait $fp
[ "$comm" = sf-forward ] || die "the re-executed stage is named '$comm'"
# 6. a stage without BLAS neither settles a kernel nor names one (-v, the header's stages[])
SAEFLOW_BLAS_FAKE_CORE=Prescott sf-cat -v --summary -i tok.sf > cat.txt 2> cat.err || die "sf-cat failed"
! grep -q "BLAS kernel" cat.err || die "sf-cat settled a BLAS kernel: $(cat cat.err)"
sf-forward --model "$F/models/stories260k" --hook blocks.2.hook_resid_post -i tok.sf | sf-outliers --max-norm 1e9 | sf-cat --head 0 > hdr.json
"$PY" -c 'import json, sys; st = json.load(open("hdr.json"))["meta"]["stages"]
b = {s["name"]: "blas" in s for s in st}
sys.exit(0 if b == {"sf-forward": True, "sf-outliers": False} else 1)' || die "stages[].blas: $(cat hdr.json)"
echo "best kernel $best; re-exec, user override, refusal and valgrind behave"

#!/usr/bin/env bash
# Run-time dispatch of the hot element-wise loops (issue 12; proto/parallel.h PROTO_SIMD_CLONES):
# sf-forward (RMSNorm, RoPE, the softmax and SiLU/GELU exp, the loss's log-sum-exp and KL sums)
# and sf-encode (the sparse decode of --splice) carry AVX-512, AVX2 and baseline versions of
# them, and the output bytes do not
# depend on which one runs — the CPU's own pick vs the AVX2 one valgrind gets (it reports no
# AVX-512) — on stories260k and the Gemma-architecture checkpoint (RMSNorm with 1 + w, GeGLU).
# Both runs use OpenBLAS's Haswell kernel (OPENBLAS_CORETYPE): left to itself OpenBLAS picks
# another sgemm kernel under valgrind, whose sums round differently.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
[ "${SF_ASAN:-0}" = 1 ] && skip "valgrind cannot run ASan binaries; the plain build runs this"
command -v valgrind > /dev/null || skip "valgrind missing (scripts/install-deps.sh installs it)"
grep -m1 '^flags' /proc/cpuinfo | grep -qw avx2 || skip "no AVX2 on this CPU: only the baseline clone can run"
export OPENBLAS_CORETYPE=Haswell
F=$SF_FIXTURES; M=$F/models
if command -v objdump > /dev/null; then
  objdump -d "$(command -v sf-forward)" | grep -q '<rope_range.avx2>:' || skip "this build has no clones (clang, -DSAEFLOW_NO_CLONES or not x86-64)"
fi
sf-tokenize --tokenizer "$M/stories260k" --ctx 64 --rows 4 --max-tokens 512 -q "$F/data/stories.jsonl" -o tok.sf || die "tokenize"
for m in stories260k tiny-gemma; do
  V=$(sed -n 's/.*"vocab_size":[[:space:]]*\([0-9]*\).*/\1/p' "$M/$m/config.json")
  [ "$m" = stories260k ] && T=tok.sf || { sf-cat -i tok.sf | "$PY" -c '
import json, sys
V = int(sys.argv[1])
for l in sys.stdin:
    d = json.loads(l)
    if d.get("kind") == "tokens": d["tokens"]["data"] = [t % V for t in d["tokens"]["data"]]
    print(json.dumps(d))' "$V" | sf-cat --pack -o "tok-$m.sf" && T=tok-$m.sf; }
  sf-forward --model "$M/$m" --hook blocks.1.hook_resid_post -q -i "$T" -o "cpu-$m.sf" || die "$m: forward"
  valgrind -q --error-exitcode=99 sf-forward --model "$M/$m" --hook blocks.1.hook_resid_post -q -i "$T" -o "vg-$m.sf" 2> vg.err ||
    { cat vg.err; die "$m: forward under valgrind"; }
  body() { sf-cat -i "$1" | grep -v -e '"kind":"header"' -e '"kind":"end"'; }
  cmp -s <(body "cpu-$m.sf") <(body "vg-$m.sf") || die "$m: the AVX2 clone (valgrind) and the CPU's pick give different acts"
done
# the loss from blocks.1 (clean + ablated: exp_sum's exp, lane sums and KL terms in every clone)
sf-forward --model "$M/stories260k" --from blocks.1.hook_resid_post --loss --ablate -q -i cpu-stories260k.sf -o loss-cpu.sf || die "loss"
valgrind -q --error-exitcode=99 sf-forward --model "$M/stories260k" --from blocks.1.hook_resid_post --loss --ablate -q \
  -i cpu-stories260k.sf -o loss-vg.sf 2> vg.err || { cat vg.err; die "loss under valgrind"; }
cmp -s <(body loss-cpu.sf) <(body loss-vg.sf) || die "sf-forward --loss: the AVX2 clone (valgrind) and the CPU's pick give different ce/kl"
S=$F/saes/stories260k-L2-relu
sf-forward --model "$M/stories260k" --hook blocks.2.hook_resid_post -q -i tok.sf -o a2.sf || die "acts at blocks.2"
sf-encode --sae "$S" --splice -q -i a2.sf -o enc-cpu.sf || die "encode"
valgrind -q --error-exitcode=99 sf-encode --sae "$S" --splice -q -i a2.sf -o enc-vg.sf 2> vg.err || { cat vg.err; die "encode under valgrind"; }
cmp -s <(body enc-cpu.sf) <(body enc-vg.sf) || die "sf-encode: the AVX2 clone (valgrind) and the CPU's pick give different feats/recon"

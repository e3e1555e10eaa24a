#!/usr/bin/env bash
# sf-forward on tiny-mistral vs ../shared/fixtures/reference: every blocks.L.hook_resid_pre/post within
# 2e-5 of max|ref| (a wrong GELU variant is 2e-4 off), resid_pre(L) == resid_post(L-1) bit for
# bit, per-token CE from blocks.0.hook_resid_pre and from later hooks (--from --loss) within 2e-5
# relative / 1e-4 absolute of the reference and equal to each other within 1e-5.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py numpy
"$PY" "$SF_ROOT/tests/sfstream.py" forward-check tiny-mistral

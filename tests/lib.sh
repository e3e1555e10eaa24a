# tests/lib.sh - sourced by tests/pipeline/*.sh and tests/cli/*/*.sh
# Gives: need_fixtures, need_py, need_chromium, skip, die, check_close A B TOL WHAT, sfjson (sf-cat JSON lines),
# mkframes N (a small tokens stream as sf-cat JSON lines)
set -u
skip() { echo "SKIP: $*"; exit 77; }
die()  { echo "FAIL: $*"; exit 1; }
need_fixtures() {
  [ -n "${SF_FIXTURES:-}" ] && [ -d "$SF_FIXTURES" ] || skip "../shared/fixtures not found (fixtures live beside the repo)"
}
need_py() { # need_py module...: Debian python3 with the modules, else skip
  local m; for m in "$@"; do "$PY" -c "import $m" 2>/dev/null || skip "python3 module $m missing (scripts/install-deps.sh installs it)"; done
}
need_chromium() { # headless Chromium; in CI (CI set) its absence is a failure, not a skip
  command -v chromium > /dev/null && return 0
  [ -n "${CI:-}" ] && die "chromium not installed (scripts/install-deps.sh installs it)"
  skip "chromium not installed (scripts/install-deps.sh installs it)"
}
mkframes() { # N: sf-cat JSON lines of a tokens stream of N frames of 2 rows x 4, header total_rows = 2N
  local k=$1 i
  echo "{\"sf\":1,\"kind\":\"header\",\"meta\":{\"total_rows\":$((2*k))}}"
  for ((i=0;i<k;i++)); do echo "{\"sf\":1,\"kind\":\"tokens\",\"seq\":$i,\"tokens\":{\"dtype\":\"i32\",\"shape\":[2,4],\"data\":[$i,1,2,3,4,5,6,7]}}"; done
  echo "{\"sf\":1,\"kind\":\"end\",\"frames\":$k,\"rows\":$((2*k))}"
}

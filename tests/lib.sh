# tests/lib.sh - sourced by tests/pipeline/*.sh and tests/cli/*/*.sh
# Gives: need_fixtures, need_py, skip, die, check_close A B TOL WHAT, sfjson (sf-cat JSON lines)
set -u
skip() { echo "SKIP: $*"; exit 77; }
die()  { echo "FAIL: $*"; exit 1; }
need_fixtures() {
  [ -n "${SF_FIXTURES:-}" ] && [ -d "$SF_FIXTURES" ] || skip "../shared/fixtures not found (fixtures live beside the repo)"
}
need_py() { # need_py module...: Debian python3 with the modules, else skip
  local m; for m in "$@"; do "$PY" -c "import $m" 2>/dev/null || skip "python3 module $m missing (scripts/install-deps.sh installs it)"; done
}

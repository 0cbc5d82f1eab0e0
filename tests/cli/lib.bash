# Shared by the tests/cli scripts (sourced; not a test itself): host settings,
# a scratch dir that is removed on exit, and the exit-code/stderr checkers.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

# run WHAT RC COMMAND...: COMMAND exits RC (stdout in out.txt, stderr in err.txt).
run() {
  local what=$1 want=$2 rc=0
  shift 2
  "$@" > out.txt 2> err.txt || rc=$?
  [ "$rc" = "$want" ] || { cat err.txt >&2; fail "$what: exit $rc, expected $want"; }
}

# expect WHAT RC PATTERN... -- COMMAND...: COMMAND exits RC and its stderr holds
# every PATTERN (fixed strings). With ONE_ERROR=1 (default) stderr must also
# hold exactly one "error:" line (reported once, where it happened; the "from"
# lines that follow are its trace).
ONE_ERROR=1
expect() {
  local what=$1 want=$2 pats=()
  shift 2
  while [ "$1" != -- ]; do pats+=("$1"); shift; done
  shift
  run "$what" "$want" "$@"
  local p
  for p in "${pats[@]}"; do
    grep -qF -- "$p" err.txt || { cat err.txt >&2; fail "$what: stderr lacks '$p'"; }
  done
  [ "$ONE_ERROR" = 0 ] || [ "$(grep -c ': error: ' err.txt)" = 1 ] ||
    { cat err.txt >&2; fail "$what: not one error line"; }
}

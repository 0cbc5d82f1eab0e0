#!/usr/bin/env bash
# molt tokenize: UTF-8 text (non-ASCII included) to a uint16 llm.c shard whose
# header and every token are checked by an independent reader (numpy); help,
# and the input errors' exit codes and messages.
source "$MOLT_SRC/tests/cli/lib.bash"

printf 'hello\n' > a.txt
printf 'h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\n' > b.txt   # "héllo 世界"
[ "$(cat b.txt)" = "héllo 世界" ] || fail "test file b.txt not written as expected"

rc=0
"$MOLT_BIN" tokenize a.txt b.txt --out out.bin > out.txt 2> err.txt || rc=$?
[ "$rc" = 0 ] || { cat err.txt >&2; fail "tokenize exited $rc"; }
grep -qx 'molt tokenize: 2 files, 24 tokens -> out.bin' out.txt \
  || { cat out.txt >&2; fail "summary line"; }
[ ! -e out.bin.tmp ] || fail "temporary file left behind"
[ "$(stat -c %s out.bin)" = $((1024 + 24 * 2)) ] || fail "file size $(stat -c %s out.bin)"
# The first three header ints with od, independently of python.
read -r magic version count < <(od -An -t d4 -N 12 out.bin)
[ "$magic $version $count" = "20240520 1 24" ] || fail "header: $magic $version $count"

"$MOLT_PYTHON" - <<'PY'
import numpy as np
raw = open("out.bin", "rb").read()
hdr = np.frombuffer(raw[:1024], dtype="<i4")
assert hdr[0] == 20240520 and hdr[1] == 1 and hdr[2] == 24, hdr[:3]
assert not hdr[3:].any(), "header tail must be zero"
tok = np.frombuffer(raw[1024:], dtype="<u2").tolist()
want = []
for text in ["hello\n", "héllo 世界\n"]:
    want += [256] + list(text.encode("utf-8")) + [257]
assert tok == want, (tok, want)
PY

# --out=PATH form, a single file; an existing output is replaced.
"$MOLT_BIN" tokenize --out=out.bin b.txt > out.txt
grep -qx 'molt tokenize: 1 files, 16 tokens -> out.bin' out.txt || fail "second summary"
[ "$(stat -c %s out.bin)" = $((1024 + 16 * 2)) ] || fail "replaced file size"

# Help.
"$MOLT_BIN" tokenize --help > help.txt || fail "--help exit code"
grep -q 'usage: molt tokenize' help.txt || fail "--help text"

# Input errors: exit 2 and a message that says what is wrong.
expect_input_error() {
  local what=$1 pattern=$2; shift 2
  set +e
  "$MOLT_BIN" tokenize "$@" > /dev/null 2> err.txt
  local rc=$?
  set -e
  [ "$rc" = 2 ] || { cat err.txt >&2; fail "$what: exit $rc, expected 2"; }
  grep -q -- "$pattern" err.txt || { cat err.txt >&2; fail "$what: message lacks '$pattern'"; }
}
expect_input_error "missing --out" "--out SHARD.bin is required" a.txt
expect_input_error "no files" "no TEXT files" --out x.bin
expect_input_error "--out without path" "--out needs a PATH" a.txt --out
expect_input_error "unknown option" "unknown option '--bogus'" a.txt --bogus --out x.bin
expect_input_error "unreadable file" "no-such.txt: cannot open" a.txt no-such.txt --out x.bin
[ ! -e x.bin ] && [ ! -e x.bin.tmp ] || fail "failed run left an output"

# Under two ranks only rank 0 writes; both exit 0.
if [ -n "${MPIEXEC:-}" ]; then
  rc=0
  $MPIEXEC -np 2 "$MOLT_BIN" tokenize a.txt --out mpi.bin > out.txt 2> err.txt || rc=$?
  [ "$rc" = 0 ] || { cat err.txt >&2; fail "2-rank tokenize exited $rc"; }
  [ "$(grep -c '^molt tokenize:' out.txt)" = 1 ] || fail "2-rank summary lines"
  [ "$(stat -c %s mpi.bin)" = $((1024 + 8 * 2)) ] || fail "2-rank shard size"
fi
echo "tokenize: ok"

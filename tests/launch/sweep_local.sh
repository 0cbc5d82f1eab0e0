# launch/sweep --local on a 4-point grid (router x seed): killed mid-way
# (SIGKILL to the whole process group, like a lost node), then re-run: the
# finished points are skipped untouched, the interrupted one resumes from its
# checkpoint, the rest run, and the table has every point. Also the sweep
# file's error paths: nothing is written or run when a point is invalid.
source "$MOLT_SRC/tests/cli/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # ranks under mpirun: see tests/CMakeLists.txt
sw="$MOLT_SRC/launch/sweep"
cat >s.ini <<INI
[sweep]
name = demo
config = $MOLT_SRC/tests/configs/tiny_moe.ini
np = 2
parallel = 1
[grid]
moe.router = topk,topp
train.seed = 1..2
[fixed]
train.steps = 30
INI

run "dry run" 0 "$sw" s.ini --dry-run
grep -q "4 of 4 points to run" out.txt || { cat out.txt; fail "dry run: not 4 points"; }
[ ! -e runs ] || fail "dry run wrote runs/"

# The test hook MOLT_FAULT_HOLD_STEP holds point 002 (only) after step 20,
# with checkpoints written, until the kill: the sweep stands at the same place
# on any machine. Its ranks (outside the sweep's process group) are killed
# too, and known gone before anything is read.
MOLT_FAULT_HOLD_STEP=20 MOLT_FAULT_HOLD_FILE="$work/held" MOLT_FAULT_HOLD_RUN=demo/002 \
  setsid "$sw" s.ini --local >first.log 2>&1 &
pg=$!
until [ -e "$work/held" ]; do
  kill -0 $pg 2>/dev/null || { cat first.log; fail "the sweep ended before point 002 held"; }
  sleep 0.05
done
kill -KILL -- -$pg
pkill -KILL -f "runs/demo/002/point.ini" || true
wait $pg 2>/dev/null || true
while pgrep -f "runs/demo/002/point.ini" >/dev/null; do sleep 0.05; done
[ -e checkpoints/demo/002/latest ] || fail "point 002 held with no checkpoint"
[ "$(cat runs/demo/000/status)" = done ] || fail "point 000 not done before the kill"
[ "$(cat runs/demo/002/status 2>/dev/null)" != done ] || fail "point 002 finished before the kill"
[ ! -e runs/demo/003/status ] || fail "point 003 started before the kill"
pending=0
for p in 000 001 002 003; do [ "$(cat runs/demo/$p/status 2>/dev/null)" = done ] || pending=$((pending + 1)); done
before0=$(stat -c %Y.%s runs/demo/000/final.h5) before1=$(stat -c %Y.%s runs/demo/001/final.h5)
logs1=$(wc -l <runs/demo/001/train.log)

run "re-run" 0 "$sw" s.ini --local
grep -q "$pending of 4 points to run (the others finished)" out.txt || { cat out.txt; fail "re-run: expected $pending points to run"; }
grep -q "point 000: done already, skipped" out.txt && fail "re-run: point 000 was not filtered out up front" || true
grep -q "point 002: topk\|point 002: moe.router=topp train.seed=1" out.txt || { cat out.txt; fail "re-run: point 002 not run"; }
grep -q "resumed from .*checkpoints/demo/002/step_" runs/demo/002/train.log ||
  { tail runs/demo/002/train.log; fail "point 002 did not resume from its checkpoint"; }
[ "$(stat -c %Y.%s runs/demo/000/final.h5)" = "$before0" ] && [ "$(stat -c %Y.%s runs/demo/001/final.h5)" = "$before1" ] ||
  fail "re-run touched a finished point"
[ "$(wc -l <runs/demo/001/train.log)" = "$logs1" ] || fail "re-run ran finished point 001 again"
for p in 000 001 002 003; do
  [ "$(cat runs/demo/$p/status)" = done ] && [ -f runs/demo/$p/eval.json ] || fail "point $p did not finish"
  [ "$("$MOLT_BIN" metrics runs/demo/$p loss | tail -1 | cut -d' ' -f1)" = 30 ] || fail "point $p metrics do not reach step 30"
done
grep -q "4 points, 0 without a final eval" out.txt || { cat out.txt; fail "re-run: collect did not see 4 points"; }
[ "$(grep -c '^| top' runs/demo/results.md)" = 2 ] || fail "results.md: expected 2 rows (topk, topp)"

run "third run" 0 "$sw" s.ini --local
grep -q "0 of 4 points to run" out.txt || fail "third run: something ran again"

# error paths: the point at fault is named, nothing runs, nothing is written
mkdir bad && cd bad
printf '[sweep]\nconfig = %s\n[grid]\nmoe.router = topk,bogus\n' "$MOLT_SRC/tests/configs/tiny_moe.ini" >b.ini
expect "invalid point" 2 "point 001 (bogus) is not a valid configuration" "moe.router" -- "$sw" b.ini --local
[ ! -e runs ] || fail "invalid point: runs/ written"
printf '[sweep]\nconfig = x.ini\n[zip]\na.b = 1,2\nc.d = 1,2,3\n' >z.ini
expect "zip lengths" 2 "z.ini:5: zipped keys need equal-length lists" -- "$sw" z.ini --dry-run
printf '[sweep]\nconfig = x.ini\n[grids]\na.b = 1\n' >s2.ini
expect "unknown section" 2 "s2.ini:3: unknown section [grids]" -- "$sw" s2.ini --dry-run
printf '[grid]\ntrain.seed = 1\n' >nobase.ini
expect "no base" 2 "name the base config" -- "$sw" nobase.ini --dry-run
cd ..
sed -i 's/train.seed = 1..2/train.seed = 1..3/' s.ini
expect "changed grid" 2 "holds a different grid" -- "$sw" s.ini --local
echo ok

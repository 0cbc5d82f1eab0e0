# The PBS path without a PBS server: a stand-in `qsub` on PATH records what
# launch/sweep --pbs submits and answers with job ids; then the submitted
# scripts run as PBS would run them (PBS_O_WORKDIR, PBS_NODEFILE,
# PBS_ARRAY_INDEX, -v variables): launch/pbs/sweep.pbs for every subjob and
# for the collect job, and launch/pbs/train.pbs for one training job. The
# ranks start through mpirun --hostfile $PBS_NODEFILE on this host.
source "$MOLT_SRC/tests/cli/lib.bash"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # ranks under mpirun: see tests/CMakeLists.txt
mkdir bin
cat >bin/qsub <<'SH'
#!/usr/bin/env bash
# records one submission per line; job ids 100[].server (arrays) or 101.server
echo "$*" >>"$QSUB_LOG"
n=$(grep -c . "$QSUB_LOG")
case " $* " in *" -J "*) echo "$((99 + n))[].server" ;; *) echo "$((99 + n)).server" ;; esac
SH
chmod +x bin/qsub
export PATH="$PWD/bin:$PATH" QSUB_LOG="$PWD/qsub.log"
cat >s.ini <<INI
[sweep]
config = $MOLT_SRC/tests/configs/tiny_moe.ini
np = 2
pbs = -q short
[grid]
moe.router = topk,topp
[fixed]
train.steps = 4
INI
run "sweep --pbs" 0 "$MOLT_SRC/launch/sweep" s.ini --pbs
[ "$(grep -c . qsub.log)" = 2 ] || { cat qsub.log; fail "expected an array and a collect submission"; }
sed -n 1p qsub.log | grep -q -- "-N s -J 0-1 -v MOLT_SWEEP_DIR=runs/s,MOLT_ROOT=$MOLT_SRC -q short $MOLT_SRC/launch/pbs/sweep.pbs" ||
  { cat qsub.log; fail "array submission"; }
sed -n 2p qsub.log | grep -q -- "-W depend=afterok:100\[\].server .*MOLT_COLLECT=1 -q short" ||
  { cat qsub.log; fail "collect submission does not depend on the array"; }

# what PBS would do with them (a 2-slot node file on this host)
printf 'localhost\nlocalhost\n' >nodes
pbsjob() { env PBS_O_WORKDIR="$PWD" PBS_NODEFILE="$PWD/nodes" PBS_JOBID="$1" MOLT_ROOT="$MOLT_SRC" "${@:2}"; }
for i in 0 1; do
  run "subjob $i" 0 pbsjob "100[$i].server" PBS_ARRAY_INDEX=$i MOLT_SWEEP_DIR=runs/s bash "$MOLT_SRC/launch/pbs/sweep.pbs"
  grep -q "mpirun --hostfile $PWD/nodes -np 2 " runs/s/00$i/train.log || { cat runs/s/00$i/train.log; fail "subjob $i: not launched on the node file"; }
done
run "collect job" 0 pbsjob 101.server MOLT_COLLECT=1 MOLT_SWEEP_DIR=runs/s bash "$MOLT_SRC/launch/pbs/sweep.pbs"
grep -q "2 points, 0 without a final eval" out.txt || { cat out.txt; fail "collect job"; }

run "train.pbs" 0 pbsjob 102.server MOLT_CONFIG="$MOLT_SRC/tests/configs/tiny_moe.ini" \
  MOLT_ARGS="--set log.run_dir=$PWD/t --set train.steps=2" bash "$MOLT_SRC/launch/pbs/train.pbs"
grep -q "no checkpoint yet, starting at step 0" out.txt && [ -f t/final.h5 ] || { cat out.txt err.txt; fail "train.pbs"; }
run "train.pbs again" 0 pbsjob 103.server MOLT_CONFIG="$MOLT_SRC/tests/configs/tiny_moe.ini" \
  MOLT_ARGS="--set log.run_dir=$PWD/t --set train.steps=2" bash "$MOLT_SRC/launch/pbs/train.pbs"
grep -q "resuming from the latest checkpoint" out.txt || { cat out.txt; fail "train.pbs: a rerun does not resume"; }
expect "train.pbs without config" 2 "set MOLT_CONFIG" -- pbsjob 104.server bash "$MOLT_SRC/launch/pbs/train.pbs"
echo ok

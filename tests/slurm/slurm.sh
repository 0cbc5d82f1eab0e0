# On a real single-node Slurm (tests/slurm/cluster): launch/slurm/train.sbatch
# trains a 2-task job; a job sent SIGUSR1 checkpoints, requeues itself and its
# second attempt resumes from that checkpoint to the end; launch/sweep --slurm
# runs a 6-point job array whose afterok collect job writes the table. The
# cluster is stopped (by pid) however the test ends.
source "$MOLT_SRC/tests/cli/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # ranks of MPI jobs: see tests/CMakeLists.txt
cl="$MOLT_SRC/tests/slurm/cluster"
# munged wants a world-searchable socket directory: not under the 0700 $work
export MOLT_SLURM_DIR=/tmp/molt-slurm-test.$$ MOLT_SLURM_PORT=$((27000 + 2 * ($$ % 500)))
trap '"$cl" down >/dev/null 2>&1 || true; rm -rf "$MOLT_SLURM_DIR" "$work"' EXIT
"$cl" up >cluster.log 2>&1 || { cat cluster.log; fail "the local Slurm did not start"; }
source "$MOLT_SLURM_DIR/env"
export MOLT_ROOT=$MOLT_SRC # jobs get the submitter's environment (MOLT_BIN too)
cfg="$MOLT_SRC/tests/configs/tiny_moe.ini"

diagnose() { squeue -a 2>&1 | head; tail -5 "$MOLT_SLURM_DIR"/slurmctld.log; for f in "$work"/*.out "$work"/*.err; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done; }
# wait_job ID: until the job (every task of an array) has left the queue. No
# deadline: a job that hangs is ended by ctest's timeout, which runs the trap.
wait_job() {
  while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; do sleep 0.5; done
}
state() { scontrol show job "$1" | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' '; }
submit() { sbatch --parsable --chdir="$work" --output="$work/%x-%j.out" --error="$work/%x-%j.err" "$@"; }

# 1. the batch template, 2 tasks
j1=$(submit --job-name=t1 "$MOLT_SRC/launch/slurm/train.sbatch" "$cfg" \
  --set log.run_dir="$work/r1" --set checkpoint.dir="$work/ck")
wait_job "$j1"
[ "$(state "$j1")" = "JobState=COMPLETED " ] || { diagnose; fail "train.sbatch job $j1: $(state "$j1")"; }
grep -q "srun --mpi=pmix -n 2 " "t1-$j1.err" || { diagnose; fail "train.sbatch: no srun --mpi=pmix launch of 2 tasks"; }
grep -q "molt: 2 rank(s)" "t1-$j1.out" || { diagnose; fail "train.sbatch: molt did not run on 2 ranks"; }
[ "$("$MOLT_BIN" metrics r1 loss | tail -1 | cut -d' ' -f1)" = 8 ] || fail "train.sbatch: metrics do not reach step 8"
[ -f r1/final.h5 ] && [ -f r1/eval.json ] || fail "train.sbatch: no final.h5 / eval.json"
latest=$(find ck -name latest | head -1)
[ -n "$latest" ] || fail "train.sbatch: no checkpoint"
"$MOLT_BIN" ckpt verify "$(dirname "$latest")/$(cat "$latest")" >verify.txt 2>&1 || { cat verify.txt; fail "checkpoint does not verify"; }

# 2. SIGUSR1 to the running job: checkpoint, exit 85, requeue, resume. The
# test hook MOLT_FAULT_HOLD_STEP (jobs get the submitter's environment) holds
# the first attempt after step 3 until the signal: it lands there on any
# machine. The second attempt resumes past step 3 and is not held.
j2=$(MOLT_FAULT_HOLD_STEP=3 MOLT_FAULT_HOLD_FILE="$work/held" MOLT_FAULT_HOLD_RUN="$work/r2" \
  submit --job-name=t2 "$MOLT_SRC/launch/slurm/train.sbatch" "$cfg" --set log.run_dir="$work/r2" \
  --set checkpoint.dir="$work/ck" --set train.steps=60 --set checkpoint.every=0 --set log.every=1)
until [ -e held ]; do
  [ -n "$(squeue -h -j "$j2" 2>/dev/null)" ] || { diagnose; fail "job $j2 ended before it held at step 3"; }
  sleep 0.2
done
scancel --signal=USR1 "$j2"
wait_job "$j2"
[ "$(state "$j2")" = "JobState=COMPLETED " ] || { diagnose; fail "USR1 job $j2: $(state "$j2")"; }
out="t2-$j2.out"
at=$(sed -n 's/^molt: SIGUSR1 received: checkpointed at step \([0-9]*\);.*/\1/p' "$out")
[ "$at" = 3 ] || { diagnose; fail "USR1: molt did not checkpoint at step 3 on the signal (at '$at')"; }
grep -q "requeueing job $j2" "$out" || { diagnose; fail "USR1: the job was not requeued"; }
grep -q "job $j2 attempt 2 " "$out" || { diagnose; fail "USR1: no second attempt"; }
grep -q "^molt: resumed from .*/step_0*$at.h5 at step $at " "$out" ||
  { diagnose; fail "USR1: the second attempt did not resume from step $at"; }
scontrol show job "$j2" | grep -q 'Restarts=1' || fail "USR1: Slurm does not count one restart"
# metrics: every step 1..60 once (the resumed attempt continues the log)
[ "$("$MOLT_BIN" metrics r2 loss | awk '!/^#/ { print $1 }' | tr '\n' ' ')" = "$(seq -s ' ' 1 60) " ] ||
  fail "USR1: metrics.jsonl does not hold steps 1..60 exactly once"

# 3. a 6-point sweep as a job array + afterok collect job
cat >s.ini <<INI
[sweep]
name = s6
config = $cfg
np = 1
parallel = 2
[grid]
moe.router = topk,topp
moe.num_experts = 2..4
[fixed]
train.steps = 4
INI
run "sweep --slurm" 0 "$MOLT_SRC/launch/sweep" s.ini --slurm
coll=$(sed -n 's/.*and collect job \([0-9]*\) (afterok).*/\1/p' out.txt)
[ -n "$coll" ] || { cat out.txt; fail "sweep --slurm: no collect job id"; }
wait_job "$coll"
[ "$(state "$coll")" = "JobState=COMPLETED " ] || { diagnose; cat runs/s6/slurm-*.out; fail "collect job $coll: $(state "$coll")"; }
[ "$(grep -c '^| top' runs/s6/results.md)" = 6 ] || { cat runs/s6/results.md; fail "results.md: expected 6 rows"; }
[ "$(grep -c '^top' runs/s6/results.csv)" = 6 ] || { cat runs/s6/results.csv; fail "results.csv: expected 6 rows"; }
grep -q "6 points, 0 without a final eval" runs/s6/slurm-collect-"$coll".out || fail "collect job output"
ls runs/s6/slurm-*_5.out >/dev/null || fail "no output file of array task 5"
echo ok

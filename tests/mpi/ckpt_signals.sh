#!/usr/bin/env bash
# Checkpoints under signals and crashes (issue 5):
# - SIGUSR1 (Slurm's --signal=USR1@120) to mpirun: the ranks finish the step
#   in flight, write a checkpoint, and the job exits 85; `--resume` then runs
#   to the end, and every step both runs logged matches a straight run bit
#   for bit.
# - SIGKILL of the whole job while it writes a checkpoint (a test-build hook,
#   MOLT_FAULT_CKPT_HOLD_STEP, holds the writer): `latest` still names the
#   previous checkpoint, which verifies, no half-written step file is taken
#   for a checkpoint, and `--resume` works.
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
args=(--set parallel.ep=2 --set train.steps=40 --set log.every=1 --set eval.samples=0)

# wait_file FILE PID: until the job's test hook has created FILE (the state it
# reports), or the job has ended without it. No clock decides the outcome.
wait_file() {
  until [ -e "$1" ]; do
    kill -0 "$2" 2>/dev/null || { cat "$log"; echo "the job ended before $1 appeared" >&2; exit 1; }
    sleep 0.05
  done
}

run straight 4 "${args[@]}" --set checkpoint.dir="$work/ck-straight"

# --- SIGUSR1: checkpoint and exit 85 ---
# MOLT_FAULT_HOLD_STEP holds the job after step 3 until the signal comes: the
# signal lands between steps 3 and 4 on any machine, loaded or idle.
log="$work/usr1.log"
MOLT_FAULT_HOLD_STEP=3 MOLT_FAULT_HOLD_FILE="$work/held" setsid $MPIEXEC -x MOLT_FAULT_HOLD_STEP \
  -x MOLT_FAULT_HOLD_FILE -np 4 "$MOLT_BIN" train "$cfg" "${args[@]}" --set log.run_dir="$work/usr1" \
  --set checkpoint.dir="$work/ck" >"$log" 2>&1 &
pid=$!
wait_file "$work/held" "$pid"
kill -USR1 "$pid"
set +e; wait "$pid"; code=$?; set -e
[ "$code" = 85 ] || { cat "$log"; echo "SIGUSR1: exit $code, expected 85" >&2; exit 1; }
grep -q 'SIGUSR1 received: checkpointed at step 3;' "$log" || { cat "$log"; exit 1; }
ckdir=$(dirname "$(find "$work/ck" -name latest)")
[ "$(cat "$ckdir/latest")" = step_00000003.h5 ] || { echo "latest: $(cat "$ckdir/latest")" >&2; exit 1; }
echo "SIGUSR1: exit 85, latest = $(cat "$ckdir/latest")"
"$MOLT_BIN" ckpt verify "$ckdir/$(cat "$ckdir/latest")"
run usr1 4 "${args[@]}" --set checkpoint.dir="$work/ck" --resume
"$MOLT_PYTHON" - "$work/straight" "$work/usr1" <<'PY'
import json, sys
a, b = (({o["step"]: (o["loss"], o["aux_loss"], o["grad_norm"]) for o in map(json.loads, open(r + "/metrics.jsonl"))}) for r in sys.argv[1:3])
assert sorted(b) == sorted(a), f"resumed run logged steps {sorted(set(a) ^ set(b))[:5]} differently"
bad = [s for s in a if a[s] != b[s]]
assert not bad, f"steps {bad[:5]} differ"
print(f"SIGUSR1 + resume: all {len(a)} logged steps identical to the straight run")
PY

# --- SIGKILL while a checkpoint is being written ---
# MOLT_FAULT_CKPT_HOLD_STEP stops every rank inside step 6's write (its .tmp
# made, one dataset in it) until the kill; the ranks are known dead before
# anything is read.
log="$work/kill.log"
MOLT_FAULT_CKPT_HOLD_STEP=6 MOLT_FAULT_HOLD_FILE="$work/held-ckpt" setsid $MPIEXEC \
  -x MOLT_FAULT_CKPT_HOLD_STEP -x MOLT_FAULT_HOLD_FILE -np 4 "$MOLT_BIN" train "$cfg" \
  "${args[@]}" --set checkpoint.every=3 --set log.run_dir="$work/kill" \
  --set checkpoint.dir="$work/ckk" >"$log" 2>&1 &
pid=$!
wait_file "$work/held-ckpt" "$pid"
[ -n "$(find "$work/ckk" -name 'step_00000006.h5.tmp')" ] || { cat "$log"; echo "no step-6 write in progress" >&2; exit 1; }
kill -KILL -- -"$pid"
pkill -KILL -f "log.run_dir=$work/kill" || true # ranks outside mpirun's process group
set +e; wait "$pid"; set -e
while pgrep -f "log.run_dir=$work/kill" >/dev/null; do sleep 0.05; done
ckdir=$(dirname "$(find "$work/ckk" -name latest)")
[ "$(cat "$ckdir/latest")" = step_00000003.h5 ] || { echo "latest: $(cat "$ckdir/latest")" >&2; exit 1; }
[ ! -e "$ckdir/step_00000006.h5" ] || { echo "a half-written step 6 was published" >&2; exit 1; }
"$MOLT_BIN" ckpt verify "$ckdir/step_00000003.h5"
run kill 4 "${args[@]}" --set checkpoint.every=20 --set checkpoint.dir="$work/ckk" --resume
grep -q 'resumed from .*step_00000003.h5 at step 3' "$work/kill.log" || { cat "$work/kill.log"; exit 1; }
echo "SIGKILL during the step-6 write: latest stayed at step 3, which verified and resumed"

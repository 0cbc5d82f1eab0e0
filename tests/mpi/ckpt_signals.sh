#!/usr/bin/env bash
# Checkpoints under signals and crashes (issue 5):
# - SIGUSR1 (Slurm's --signal=USR1@120) to mpirun: the ranks finish the step
#   in flight, write a checkpoint, and the job exits 85; `--resume` then runs
#   to the end, and every step both runs logged matches a straight run bit
#   for bit.
# - SIGKILL of the whole job while it writes a checkpoint (a test-build hook,
#   MOLT_FAULT_CKPT_SLOW_MS, slows the writer): `latest` still names the
#   previous checkpoint, which verifies, no half-written step file is taken
#   for a checkpoint, and `--resume` works.
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
args=(--set parallel.ep=2 --set train.steps=40 --set log.every=1 --set eval.samples=0)

# wait_for FILE PATTERN SECONDS
wait_for() {
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  cat "$1"; echo "timed out waiting for '$2' in $1" >&2; return 1
}

run straight 4 "${args[@]}" --set checkpoint.dir="$work/ck-straight"

# --- SIGUSR1: checkpoint and exit 85 ---
log="$work/usr1.log"
setsid $MPIEXEC -np 4 "$MOLT_BIN" train "$cfg" "${args[@]}" --set log.run_dir="$work/usr1" \
  --set checkpoint.dir="$work/ck" >"$log" 2>&1 &
pid=$!
wait_for "$log" '^step      3/' 120
kill -USR1 "$pid"
set +e; wait "$pid"; code=$?; set -e
[ "$code" = 85 ] || { cat "$log"; echo "SIGUSR1: exit $code, expected 85" >&2; exit 1; }
grep -q 'SIGUSR1 received: checkpointed at step' "$log" || { cat "$log"; exit 1; }
ckdir=$(dirname "$(find "$work/ck" -name latest)")
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
log="$work/kill.log"
MOLT_FAULT_CKPT_SLOW_MS=30 setsid $MPIEXEC -x MOLT_FAULT_CKPT_SLOW_MS -np 4 "$MOLT_BIN" train "$cfg" \
  "${args[@]}" --set checkpoint.every=3 --set log.run_dir="$work/kill" \
  --set checkpoint.dir="$work/ckk" >"$log" 2>&1 &
pid=$!
wait_for "$log" 'checkpoint step 3 ' 300
for _ in $(seq 1 600); do # until step 6's .tmp exists: the writer is in the middle of it
  [ -n "$(find "$work/ckk" -name 'step_00000006.h5.tmp')" ] && break; sleep 0.1
done
[ -n "$(find "$work/ckk" -name 'step_00000006.h5.tmp')" ] || { cat "$log"; echo "no step-6 write seen" >&2; exit 1; }
kill -KILL -- -"$pid"
pkill -KILL -f "log.run_dir=$work/kill" || true # ranks outside mpirun's process group
set +e; wait "$pid"; set -e
sleep 0.5
ckdir=$(dirname "$(find "$work/ckk" -name latest)")
[ "$(cat "$ckdir/latest")" = step_00000003.h5 ] || { echo "latest: $(cat "$ckdir/latest")" >&2; exit 1; }
[ ! -e "$ckdir/step_00000006.h5" ] || { echo "a half-written step 6 was published" >&2; exit 1; }
"$MOLT_BIN" ckpt verify "$ckdir/step_00000003.h5"
run kill 4 "${args[@]}" --set checkpoint.every=20 --set checkpoint.dir="$work/ckk" --resume
grep -q 'resumed from .*step_00000003.h5 at step 3' "$work/kill.log" || { cat "$work/kill.log"; exit 1; }
echo "SIGKILL during the step-6 write: latest stayed at step 3, which verified and resumed"

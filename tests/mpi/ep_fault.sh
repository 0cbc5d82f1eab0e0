#!/usr/bin/env bash
# A rank that fails inside a MoE layer ends the whole job (issue 4): with
# MOLT_FAULT_MOE_RANK=1 (test builds, MOLT_FAULT_INJECTION) rank 1 reports an
# error in layer 0's first MoE site while the other ranks wait for it inside
# the all-to-all. mpirun must exit non-zero within 10 s of the message, and
# the message must name the rank and the site.
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
export MOLT_FAULT_MOE_RANK=1
log="$work/fault.log"
set +e
$MPIEXEC -x MOLT_FAULT_MOE_RANK -np 4 "$MOLT_BIN" train "$cfg" --set parallel.ep=2 \
  --set log.run_dir="$work/fault" >"$log" 2>&1 &
pid=$!
t_msg=""
for _ in $(seq 1 1200); do # up to 120 s for start-up and the message
  if [ -z "$t_msg" ] && grep -q 'injected fault' "$log"; then t_msg=$(date +%s.%N); fi
  kill -0 "$pid" 2>/dev/null || break
  if [ -n "$t_msg" ] && awk -v a="$t_msg" -v b="$(date +%s.%N)" 'BEGIN{exit !(b - a > 15)}'; then
    break
  fi
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  cat "$log"; kill -9 "$pid"; echo "ep_fault: the job still runs after the fault" >&2; exit 1
fi
wait "$pid"; code=$?
t_end=$(date +%s.%N)
set -e
cat "$log" | grep -v '^ *[a-z_]* = \|^\[\|^#\|^$' | tail -20
[ -n "$t_msg" ] || { cat "$log"; echo "ep_fault: no fault message" >&2; exit 1; }
[ "$code" -ne 0 ] || { echo "ep_fault: mpirun exited 0" >&2; exit 1; }
grep -q 'molt\[rank 1\]: error: model.layers.0.mlp.gate_proj: injected fault' "$log" \
  || { echo "ep_fault: the message does not name rank 1 and the site" >&2; exit 1; }
grep -q 'aborting the job' "$log" || { echo "ep_fault: no abort notice" >&2; exit 1; }
secs=$(awk -v a="$t_msg" -v b="$t_end" 'BEGIN{printf "%.1f", b - a}')
echo "ep_fault: mpirun exited $code, ${secs} s after the fault message"
awk -v s="$secs" 'BEGIN{exit !(s <= 10)}' || { echo "ep_fault: took ${secs} s (> 10 s)" >&2; exit 1; }

#!/usr/bin/env bash
# A rank that fails inside a MoE layer ends the whole job (issue 4): with
# MOLT_FAULT_MOE_RANK=1 (test builds, MOLT_FAULT_INJECTION) rank 1 reports an
# error in layer 0's first MoE site while the other ranks wait for it inside
# the all-to-all. mpirun must exit non-zero -- the test waits for that, not
# for a clock: a job that hangs instead is ended by ctest's timeout and fails
# -- and the message must name the rank and the site.
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
export MOLT_FAULT_MOE_RANK=1
log="$work/fault.log"
set +e
$MPIEXEC -x MOLT_FAULT_MOE_RANK -np 4 "$MOLT_BIN" train "$cfg" --set parallel.ep=2 \
  --set log.run_dir="$work/fault" >"$log" 2>&1
code=$?
set -e
grep -v '^ *[a-z_]* = \|^\[\|^#\|^$' "$log" | tail -20
grep -q 'injected fault' "$log" || { cat "$log"; echo "ep_fault: no fault message" >&2; exit 1; }
[ "$code" -ne 0 ] || { echo "ep_fault: mpirun exited 0" >&2; exit 1; }
grep -q 'molt\[rank 1\]: error: model.layers.0.mlp.gate_proj: injected fault' "$log" \
  || { echo "ep_fault: the message does not name rank 1 and the site" >&2; exit 1; }
grep -q 'aborting the job' "$log" || { echo "ep_fault: no abort notice" >&2; exit 1; }
[ ! -e "$work/fault/final.h5" ] || { echo "ep_fault: the failed job wrote final.h5" >&2; exit 1; }
echo "ep_fault: mpirun exited $code after the fault on rank 1"

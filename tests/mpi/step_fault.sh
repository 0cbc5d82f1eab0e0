#!/usr/bin/env bash
# An error in a MoE site's backward stops the step before any gradient
# reduction or optimizer update, on every rank (issue 14). The test hook
# MOLT_FAULT_MOE_BWD_STEP=4 (with MOLT_FAULT_MOE_RANK) makes one rank's first
# MoE site report a failure in the backward of step 4 and go on through its
# exchanges, as a site does when it can. The job must exit 1 with the error
# printed once, publish no step-4 checkpoint, and leave on disk exactly the
# weights and moments of step 3 -- those of a run without the fault, bit for
# bit. At (dp, ep) = (1, 1) and (2, 2).
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
args=(--set train.steps=6 --set checkpoint.every=1 --set checkpoint.keep=10 --set eval.samples=0)

for layout in "1 1" "4 2"; do
  read -r np ep <<<"$layout"
  run "straight$np" "$np" "${args[@]}" --set parallel.ep="$ep" --set checkpoint.dir="$work/cks$np"
  log="$work/fault$np.log"
  set +e
  MOLT_FAULT_MOE_RANK=$((np - 1)) MOLT_FAULT_MOE_BWD_STEP=4 $MPIEXEC -x MOLT_FAULT_MOE_RANK \
    -x MOLT_FAULT_MOE_BWD_STEP -np "$np" "$MOLT_BIN" train "$cfg" "${args[@]}" \
    --set parallel.ep="$ep" --set log.run_dir="$work/fault$np" --set checkpoint.dir="$work/ckf$np" \
    >"$log" 2>&1
  code=$?
  set -e
  [ "$code" = 1 ] || { cat "$log"; echo "np $np: exit $code, expected 1" >&2; exit 1; }
  [ "$(grep -c ': error: ' "$log")" = 1 ] || { cat "$log"; echo "np $np: not one error line" >&2; exit 1; }
  grep -q "molt\[rank $((np - 1))\]: error: model.layers.0.mlp.gate_proj: injected backward fault in step 4" "$log" ||
    { cat "$log"; echo "np $np: the error does not name the rank, site and step" >&2; exit 1; }
  grep -q "from the backward pass of step 4 (nothing of it applied)" "$log" ||
    { cat "$log"; echo "np $np: no note of where the step stopped" >&2; exit 1; }
  ! grep -q "aborting the job" "$log" || { cat "$log"; echo "np $np: aborted instead of a clean stop" >&2; exit 1; }
  ckf=$(dirname "$(find "$work/ckf$np" -name latest)") cks=$(dirname "$(find "$work/cks$np" -name latest)")
  [ "$(cat "$ckf/latest")" = step_00000003.h5 ] || { echo "np $np: latest is $(cat "$ckf/latest")" >&2; exit 1; }
  [ ! -e "$ckf/step_00000004.h5" ] && [ ! -e "$work/fault$np/final.h5" ] ||
    { ls "$ckf" "$work/fault$np" >&2; echo "np $np: step 4 or final weights written" >&2; exit 1; }
  "$MOLT_PYTHON" - "$cks/step_00000003.h5" "$ckf/step_00000003.h5" <<'PY'
import sys, h5py
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert len(names) > 20, names
diff = [n for n in names if n not in b or a[n][()].tobytes() != b[n][()].tobytes()]
assert not diff, f"{len(diff)} datasets differ, e.g. {diff[0]}"
assert a["optim"].attrs["step"] == b["optim"].attrs["step"] == 3
print(f"{sys.argv[2]}: all {len(names)} datasets (weights and moments) identical to the run without the fault")
PY
done
echo "step_fault: ok"

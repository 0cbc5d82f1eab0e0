# Shared by the layout-equivalence scripts in tests/mpi (sourced; not a test):
# host settings, a scratch dir removed on exit, and `run` for one training run.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run NAME NP [--set ...]: train $cfg on NP ranks into $work/NAME; on failure
# print its log and stop the test. $mpi_args (optional) go to mpirun.
run() {
  local name=$1 np=$2
  shift 2
  $MPIEXEC ${mpi_args:-} -np "$np" "$MOLT_BIN" train "$cfg" --set log.run_dir="$work/$name" "$@" \
    >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
}

# bitwise RUN_A RUN_B: the steps both logged agree exactly (loss, aux loss,
# grad norm, lr), and so does every dataset of final.h5, byte for byte.
bitwise() {
  "$MOLT_PYTHON" - "$1" "$2" <<'PY'
import json, sys, h5py, numpy as np
a, b = sys.argv[1:3]
def log(r):
    return {o["step"]: (o["loss"], o.get("aux_loss"), o["grad_norm"], o["lr"])
            for o in map(json.loads, open(r + "/metrics.jsonl"))}
la, lb = log(a), log(b)
common = sorted(set(la) & set(lb))
assert len(common) >= 15, f"only {len(common)} common steps"
bad = [s for s in common if la[s] != lb[s]]
assert not bad, f"steps {bad[:5]} differ: {la[bad[0]]} vs {lb[bad[0]]}"
fa, fb = h5py.File(a + "/final.h5"), h5py.File(b + "/final.h5")
names = []
fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
diff = [n for n in names if fa[n][()].tobytes() != fb[n][()].tobytes()]
assert not diff, f"{len(diff)} datasets differ, e.g. {diff[0]}"
print(f"{b}: steps {common[0]}-{common[-1]} and {len(names)} datasets identical to {a}")
PY
}

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

# Sourced by every launch script and by script tests: the one place that holds
# the host settings molt's MPI runs need (DESIGN §11). Safe to source twice.
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# On a workstation or container (not inside a Slurm/PBS job, whose nodes have
# the site's fabric: InfiniBand through UCX, CMA between ranks):
if [ -z "${SLURM_JOB_ID:-}" ] && [ -z "${PBS_NODEFILE:-}" ]; then
  # containers often forbid the CMA/ptrace single-copy path of the vader BTL;
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
  # keep Open MPI from probing for absent high-speed transports (noisy warnings).
  export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
  export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"
fi
# Ranks on one node beyond the core count need --oversubscribe (never fake slots).
MOLT_MPIRUN_FLAGS="--oversubscribe --bind-to none"
# Debian's python3 carries the oracles (torch, h5py, numpy); another python3 may
# come first on PATH.
MOLT_PYTHON=/usr/bin/python3
MOLT_NCORES=$(nproc)
export MOLT_PYTHON MOLT_MPIRUN_FLAGS MOLT_NCORES
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left exactly as the host set them.
# molt_threads NP: OpenMP + OpenBLAS threads per rank so ranks x threads = cores.
# Idle OpenMP threads must sleep, not spin, or they starve OpenBLAS's threads.
molt_threads() {
  local t=$(( MOLT_NCORES / ${1:-1} )); [ "$t" -ge 1 ] || t=1
  export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE
}
# molt_usage SCRIPT: a launch script's --help is its leading comment block.
molt_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }

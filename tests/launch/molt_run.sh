# launch/molt-run --dry-run prints the launch line it would run: mpirun on a
# plain host (--oversubscribe only beyond the cores), srun --mpi=pmix inside a
# Slurm allocation (simulated by its environment variables), mpirun
# --hostfile inside PBS (simulated PBS_NODEFILE). And the real thing runs.
source "$MOLT_SRC/tests/cli/lib.bash"
mr="$MOLT_SRC/launch/molt-run"
# keep a test runner's own batch environment out of the plain-host cases
unset SLURM_JOB_ID SLURM_NTASKS SLURM_CPUS_PER_TASK SLURM_CPUS_ON_NODE SLURM_NNODES PBS_NODEFILE PBS_JOBID
line() { grep -F 'molt-run: ' err.txt; }
has() { line | grep -qF -- "$1" || { cat err.txt >&2; fail "$2: launch line lacks '$1'"; }; }
lacks() { ! line | grep -qF -- "$1" || { cat err.txt >&2; fail "$2: launch line has '$1'"; }; }

run "--help" 0 "$mr" --help
grep -q 'srun --mpi=pmix' out.txt || fail "--help does not describe the Slurm launch"

cores=$(nproc)
run "host, N = cores" 0 env MOLT_CORES="$cores" "$mr" --dry-run -n "$cores" train my.ini --set a.b=1
has "mpirun --bind-to none -np $cores" "host"; lacks "--oversubscribe" "host"
has "OMP_NUM_THREADS=1 " "host"; has "-x OPENBLAS_NUM_THREADS" "host"
has "$MOLT_BIN train my.ini --set a.b=1" "host"
run "host, N > cores" 0 "$mr" --dry-run -n $((cores * 2 + 1)) train my.ini
has "mpirun --oversubscribe --bind-to none -np $((cores * 2 + 1))" "oversubscribed host"
run "host, 1 rank" 0 env MOLT_CORES=4 "$mr" --dry-run train my.ini
has "OMP_NUM_THREADS=4 mpirun --bind-to none -np 1" "one rank owns all cores"

run "slurm" 0 env SLURM_JOB_ID=4242 SLURM_NTASKS=8 SLURM_CPUS_PER_TASK=4 SLURM_CPUS_ON_NODE=16 \
  SLURM_NNODES=2 "$mr" --dry-run -- train my.ini --auto-resume
has "Slurm job 4242" "slurm"; has "srun --mpi=pmix -n 8 $MOLT_BIN train my.ini --auto-resume" "slurm"
has "OMP_NUM_THREADS=4 " "slurm"; lacks "mpirun" "slurm"; lacks "--overcommit" "slurm"
run "slurm, more ranks than CPUs" 0 env SLURM_JOB_ID=1 SLURM_NTASKS=4 SLURM_CPUS_ON_NODE=2 \
  "$mr" --dry-run train my.ini
has "srun --mpi=pmix -n 4 --overcommit" "overcommitted slurm"

printf 'node1\nnode1\nnode2\nnode2\n' >nodes
run "pbs" 0 env PBS_NODEFILE="$PWD/nodes" PBS_JOBID=77.pbs "$mr" --dry-run train my.ini
has "PBS job 77.pbs (4 slots" "pbs"; has "mpirun --hostfile $PWD/nodes -np 4 " "pbs"
lacks "--oversubscribe" "pbs"; has "$MOLT_BIN train my.ini" "pbs"
run "pbs -n 8" 0 env PBS_NODEFILE="$PWD/nodes" "$mr" --dry-run -n 8 train my.ini
has "-np 8 --oversubscribe" "pbs beyond its slots"

expect "no args" 2 "no molt arguments" -- "$mr" -n 2
expect "bad -n" 2 "is not a positive number" -- "$mr" -n x train a.ini
expect "no binary" 2 "is not built" -- env MOLT_BIN=/nonexistent/molt "$mr" train a.ini

# and for real: molt-run starts a 2-rank job that trains (ranks under mpirun
# run without LeakSanitizer, as in tests/CMakeLists.txt's MPIEXEC)
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
run "real run" 0 "$mr" -n 2 train "$MOLT_SRC/tests/configs/tiny_moe.ini" --set log.run_dir="$PWD/r" \
  --set train.steps=2 --set eval.samples=0 --set checkpoint.every=0
grep -q 'molt-run: this host' err.txt || fail "real run: no launch line"
[ -f r/final.h5 ] && [ "$(grep -c . r/metrics.jsonl)" = 2 ] || fail "real run: no final.h5 / metrics"
echo "ok"

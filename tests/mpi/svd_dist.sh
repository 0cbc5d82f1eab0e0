#!/usr/bin/env bash
# Distributed SVD (DESIGN §6): molt_svd_dist (ScaLAPACK pdgesvd on a BLACS
# grid of 1x1, 1x2 and 2x2 ranks) against LAPACK dgesvd on one process, and
# LAPACK sgesvd against both, for Gaussian, decaying-spectrum and odd-sized
# matrices (tests/ref/svd_check.c lists the cases and tolerances). Prints the
# grid and every measured error; fails on any violation.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
for np in 1 2 4; do
  molt_threads "$np"
  echo "== np $np"
  $MPIEXEC -np "$np" "$MOLT_TESTBIN/svd_check"
done

#!/usr/bin/env bash
# PyTorch oracle for the routers and auxiliary losses (DESIGN §3–§4): every
# router kind x parameters x input set (ties, a top-p sum exactly on the
# threshold, partial dynmole fallback, an unused expert, N = 1, k >= N, ...)
# dumped by tests/ref/router_dump.c and recomputed in float64 with autograd by
# tests/ref/router_oracle.py: selections exactly, values and gradients within
# 1e-4 relative. One line per case, then a summary; non-zero exit on a mismatch.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$MOLT_TESTBIN/router_dump" "$work/router.h5"
"$MOLT_PYTHON" "$MOLT_SRC/tests/ref/router_oracle.py" "$work/router.h5" --tol 1e-4

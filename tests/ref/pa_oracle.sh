# FactorLLM's Prior-Approximate and balance router losses (molt_pa_loss)
# against PyTorch autograd in float64: values and dL/dz within 1e-4, with
# clipped probabilities, tied errors, k = N, k = 1 and a micro-batch of a
# larger global batch (tests/ref/pa_dump.c, pa_oracle.py).
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$MOLT_TESTBIN/pa_dump" "$work/pa.h5"
"$MOLT_PYTHON" "$MOLT_SRC/tests/ref/pa_oracle.py" "$work/pa.h5"

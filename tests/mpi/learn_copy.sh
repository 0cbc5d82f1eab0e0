#!/usr/bin/env bash
# Issue 2: training on the task suite works end to end: a tiny model reaches
# >= 95% exact-match accuracy on held-out copy examples within 1000 steps
# (fixed seed), trained on 2 ranks through `molt train`.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
molt_threads 2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$MPIEXEC -np 2 -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x OMP_WAIT_POLICY "$MOLT_BIN" train \
  "$MOLT_SRC/tests/configs/copy.ini" --set log.run_dir="$work/run" >"$work/log" 2>&1 ||
  { cat "$work/log"; exit 1; }
grep -E '^step' "$work/log"
"$MOLT_PYTHON" - "$work/run/eval.json" <<'PY'
import json, sys
acc = json.load(open(sys.argv[1]))["tasks"]["copy"]
print(f"copy accuracy after 1000 steps: {acc:.3f} (need >= 0.95)")
sys.exit(0 if acc >= 0.95 else 1)
PY

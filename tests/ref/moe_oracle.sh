#!/usr/bin/env bash
# PyTorch oracle for Mixture-of-Experts models: for every tests/ref/configs/moe_*.ini
# (plugin with each router, fused_mlp, ffn, FactorLLM, MoLA per-layer counts; peft
# and full) oracle_dump writes logits, LM loss, the gradient of LM loss + aux
# router loss for every trainable, and the weights after 5 AdamW steps;
# tests/ref/torch_llama.py recomputes them in float64 within 1e-4 relative.
# One summary line per config; fails if any config fails.
set -uo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail=0; n=0
for cfg in "$MOLT_SRC"/tests/ref/configs/moe_*.ini; do
  name=$(basename "$cfg" .ini)
  n=$((n + 1))
  if ! "$MOLT_TESTBIN/oracle_dump" "$cfg" "$work/$name.h5" >"$work/$name.dump.log" 2>&1; then
    echo "FAIL $name: oracle_dump failed:"; sed 's/^/    /' "$work/$name.dump.log"
    fail=$((fail + 1)); continue
  fi
  case "$name" in *sparse*)
    if ! grep -qE 'experts without tokens: [1-9]' "$work/$name.dump.log"; then
      echo "FAIL $name: no expert without tokens, the case it exists for"; fail=$((fail + 1)); continue
    fi ;;
  esac
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/torch_llama.py" "$work/$name.h5" --tol 1e-4 \
    >"$work/$name.log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    printf 'ok   %-28s %s\n' "$name" "$(tail -n 1 "$work/$name.log")"
  else
    printf 'FAIL %-28s (exit %d) %s\n' "$name" "$rc" "$(tail -n 1 "$work/$name.log")"
    grep -E 'FAIL|WARNING|malformed|Error|error' "$work/$name.log" | head -n 12 | sed 's/^/    /'
    fail=$((fail + 1))
  fi
  rm -f "$work/$name.h5"
done
echo "moe_oracle: $n configs, $fail failed"
[ "$n" -gt 0 ] && [ "$fail" -eq 0 ]

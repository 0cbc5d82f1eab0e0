#!/usr/bin/env bash
# PyTorch oracle for the whole model (issue 2): logits, loss, every trainable
# gradient and the weights after 5 AdamW steps, for full/peft x tied/untied with
# LoRA on all seven projections, within 1e-4 relative (tests/ref/torch_llama.py).
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cfg="$MOLT_SRC/tests/ref/configs/oracle.ini"
cases=(
  "full-tied   model.mode=full model.tie_embeddings=true"
  "full-untied model.mode=full model.tie_embeddings=false"
  "peft-tied   model.mode=peft model.tie_embeddings=true"
  "peft-untied model.mode=peft model.tie_embeddings=false lora.train_norms=true"
)
for c in "${cases[@]}"; do
  read -r name sets <<<"$c"
  args=(); for s in $sets; do args+=(--set "$s"); done
  echo "== $name"
  "$MOLT_TESTBIN/oracle_dump" "$cfg" "$work/$name.h5" "${args[@]}"
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/torch_llama.py" "$work/$name.h5" --tol 1e-4 | tail -n 1
done

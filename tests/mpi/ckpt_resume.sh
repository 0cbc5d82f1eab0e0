#!/usr/bin/env bash
# Checkpoints and resume (issue 5, DESIGN §7). A run of 30 steps writes a
# checkpoint every 15; resuming from step 15 must continue bit for bit at the
# same layout -- identical loss, aux loss and grad norm in metrics.jsonl for
# steps 16-30 and byte-identical final weights -- at np 1 and at (dp,ep) =
# (2,2). The (2,2) checkpoint also resumes at (1,4), (4,1) and (1,1)
# (experts and their moments redistributed by global id): the continuation
# agrees with the same-layout one within 1e-5. Variants: plugin/dynmole and
# fused_mlp/topk, both with MoLA per-layer counts 3 and 5.
source "$MOLT_SRC/tests/mpi/lib.bash"
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
variants=(
  "plugin-dynmole --set moe.num_experts=3x1,5x1"
  "fused-topk --set moe.placement=fused_mlp --set moe.router=topk --set moe.top_k=2 --set moe.aux=balance --set moe.num_experts=3x1,5x1"
)
for variant in "${variants[@]}"; do
  read -r v sets <<<"$variant"
  read -r -a args <<<"$sets"
  args+=(--set train.steps=30)
  for l in 1:1 2:2; do
    dp=${l%:*} ep=${l#*:} np=$((${l%:*} * ${l#*:}))
    run "$v-$l-straight" $np --set parallel.ep=$ep --set checkpoint.every=15 \
      --set checkpoint.dir="$work/ck-$v-$l" "${args[@]}"
    ck=$(find "$work/ck-$v-$l" -name step_00000015.h5)
    [ -n "$ck" ] || { echo "no step-15 checkpoint in $work/ck-$v-$l" >&2; exit 1; }
    run "$v-$l-resumed" $np --set parallel.ep=$ep --set checkpoint.dir="$work/ck2" \
      "${args[@]}" --resume "$ck"
    grep -q "resumed from .*step_00000015.h5 at step 15" "$work/$v-$l-resumed.log" \
      || { cat "$work/$v-$l-resumed.log"; exit 1; }
    bitwise "$work/$v-$l-straight" "$work/$v-$l-resumed"
  done
  ck=$(find "$work/ck-$v-2:2" -name step_00000015.h5)
  for l in 1:4 4:1 1:1; do
    dp=${l%:*} ep=${l#*:}
    run "$v-reshard-$l" $((dp * ep)) --set parallel.ep=$ep --set checkpoint.dir="$work/ck3" \
      "${args[@]}" --resume "$ck"
  done
  echo "== $v: resharded continuations against the (2,2) one"
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/compare_runs.py" --tol 1e-5 "$work/$v-2:2-resumed" \
    "$work/$v-reshard-1:4" "$work/$v-reshard-4:1" "$work/$v-reshard-1:1"
done

# A checkpoint written before a key existed (its config attribute lacks the
# line) resumes: the missing key takes its default, as when it was written.
# Here the Parrot keys model.projector/feat_dim/feat_tokens and moe.enable
# are cut from the step-15 checkpoint of the first variant at (1,1).
read -r v sets <<<"${variants[0]}"
read -r -a args <<<"$sets"
args+=(--set train.steps=30)
old="$work/old-ck"; mkdir -p "$old"
src=$(find "$work/ck-$v-1:1" -name step_00000015.h5)
cp "$src" "$(dirname "$src")"/base_*.h5 "$old/" # peft: the base file sits beside the step
"$MOLT_PYTHON" - "$old/step_00000015.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    text = f.attrs["config"]
    text = text.decode() if isinstance(text, bytes) else text
    cut = [l for l in text.split("\n") if l.split(" =")[0] in ("projector", "feat_dim", "feat_tokens", "enable")]
    assert len(cut) == 4, cut
    f.attrs["config"] = np.bytes_("\n".join(l for l in text.split("\n") if l not in cut))
PY
run "$v-old-resumed" 1 --set checkpoint.dir="$work/ck4" "${args[@]}" --resume "$old/step_00000015.h5"
bitwise "$work/$v-1:1-straight" "$work/$v-old-resumed"

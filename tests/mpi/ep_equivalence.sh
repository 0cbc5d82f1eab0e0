#!/usr/bin/env bash
# Expert parallelism (issue 4, DESIGN §5): 20 training steps at (dp, ep) =
# (1,1) (2,1) (1,2) (2,2) (1,4) (4,1) give the same LM and auxiliary loss per
# step (1e-5 relative) and the same final weights (1e-5 relative L2) for
#   plugin/dynmole, fused_mlp/topk, ffn/switch (full mode: trainable experts,
#   capacity_factor 1.25 -- a global cut -- and jitter), and MoLA's per-layer
#   counts 3 and 5 (not divisible by ep: an ep rank may hold no expert);
# and moe.dispatch = replicate / auto and parallel.a2a_chunks = 2 agree with
# alltoall. Every layout is compared with the single-rank run.
source "$MOLT_SRC/tests/mpi/lib.bash"
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
layouts="1:1 2:1 1:2 2:2 1:4 4:1"
variants=(
  "plugin-dynmole"
  "fused-topk --set moe.placement=fused_mlp --set moe.router=topk --set moe.top_k=2 --set moe.aux=balance --set moe.balance_coef=0.01"
  "ffn-switch --set model.mode=full --set moe.placement=ffn --set moe.router=switch --set moe.aux=balance,zloss --set moe.capacity_factor=1.25 --set moe.jitter=0.01"
  "mola --set moe.router=topk --set moe.top_k=2 --set moe.aux=balance --set moe.num_experts=3x1,5x1 --set moe.targets=q_proj,v_proj,down_proj"
)
for variant in "${variants[@]}"; do
  read -r v sets <<<"$variant"
  args=(--set train.steps=20); [ -n "${sets:-}" ] && read -r -a more <<<"$sets" && args+=("${more[@]}")
  runs=()
  for l in $layouts; do
    dp=${l%:*} ep=${l#*:}
    run "$v-dp$dp-ep$ep" $((dp * ep)) --set parallel.ep="$ep" "${args[@]}"
    runs+=("$work/$v-dp$dp-ep$ep")
  done
  case $v in plugin-dynmole|ffn-switch)
    run "$v-replicate" 4 --set parallel.ep=4 --set moe.dispatch=replicate "${args[@]}"
    run "$v-chunks2" 4 --set parallel.ep=4 --set parallel.a2a_chunks=2 "${args[@]}"
    run "$v-auto" 4 --set parallel.ep=2 --set moe.dispatch=auto "${args[@]}"
    grep -q -- '-> \(replicate\|alltoall\)' "$work/$v-auto.log" || { cat "$work/$v-auto.log"; echo "auto printed no choice" >&2; exit 1; }
    runs+=("$work/$v-replicate" "$work/$v-chunks2" "$work/$v-auto")
  esac
  grep -q 'layout world 4 = dp 2 x ep 2; ep groups {0,1} {2,3}; edp groups {0,2} {1,3}' \
    "$work/$v-dp2-ep2.log" || { cat "$work/$v-dp2-ep2.log"; echo "layout line missing" >&2; exit 1; }
  echo "== $v"
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/compare_runs.py" --tol 1e-5 "${runs[@]}"
done

#!/usr/bin/env bash
# Expert parallelism under extreme imbalance (issue 4). A test-build hook
# (MOLT_FAULT_ROUTE_ONE=0:2, compiled with MOLT_FAULT_INJECTION) adds 30 to
# expert 2's router logit in layer 0, so every token of that layer goes to
# expert 2: at ep=4 rank 2 receives every token and ranks 0, 1, 3 receive
# none. The runs must finish (no hang), agree with the single-rank run
# (losses 1e-5, weights 1e-5), and with moe.capacity_factor = 1 (switch, 4
# experts, 8 x 32 = 256 tokens per step: capacity ceil(256/4) = 64) layer 0
# must cut exactly 256 - 64 = 192 (token, expert) pairs per step, leaving 192
# tokens on the residual path only, at every layout.
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
export MOLT_FAULT_ROUTE_ONE=0:2
mpi_args="-x MOLT_FAULT_ROUTE_ONE"
ffn=(--set train.steps=8 --set model.mode=full --set moe.placement=ffn --set moe.router=switch
     --set moe.aux=balance --set moe.capacity_factor=1 --set moe.jitter=0)
plug=(--set train.steps=8 --set moe.router=topk --set moe.top_k=2 --set moe.aux=balance)
for v in ffn plug; do
  declare -n a=$v
  run "$v-ep1" 1 "${a[@]}"
  run "$v-ep4" 4 --set parallel.ep=4 "${a[@]}"
  run "$v-ep4-chunks" 4 --set parallel.ep=4 --set parallel.a2a_chunks=3 "${a[@]}"
  run "$v-dp2-ep2" 4 --set parallel.ep=2 "${a[@]}"
  echo "== $v (every token of layer 0 to expert 2)"
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/compare_runs.py" --tol 1e-5 \
    "$work/$v-ep1" "$work/$v-ep4" "$work/$v-ep4-chunks" "$work/$v-dp2-ep2"
done
# the forced layer's load and the capacity cut, step by step
for r in ffn-ep1 ffn-ep4 ffn-dp2-ep2; do
  "$MOLT_PYTHON" - "$work/$r/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
assert len(steps) >= 8, f"{sys.argv[1]}: {len(steps)} logged steps"
for o in steps:
    site = {m["site"]: m for m in o["moe"]}["model.layers.0.mlp"]
    assert site["load"][2] == 1.0, f"step {o['step']}: load {site['load']}"
    assert site["capacity_dropped"] == 192, f"step {o['step']}: cut {site['capacity_dropped']}"
    assert site["dropped_tokens"] == 192, f"step {o['step']}: residual-only {site['dropped_tokens']}"
print(f"{sys.argv[1]}: layer 0 sends every token to expert 2; 192 of 256 cut each step")
PY
done

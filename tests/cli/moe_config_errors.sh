#!/usr/bin/env bash
# Bad [moe] settings (issue 3): names checked against the allowed sets, and
# combinations that make no sense refused, each with exit 2 and one message
# naming the key (and the allowed values where there is a set).
source "$MOLT_SRC/tests/cli/lib.bash"
cfg="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"
m() { expect "$1" 2 "${@:2}"; }
m "placement name" "moe.placement: unknown value \"plugn\" (allowed: none, plugin, fused_mlp, ffn, xattn)" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugn
m "router name" "moe.router: unknown value \"dynmol\"" "topk, topp, dynmole" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.router=dynmol
m "target name" "moe.targets: unknown name \"upproj\"" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.targets=upproj
m "factor needs ffn" "moe.router = factor needs moe.placement = ffn" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.router=factor
m "MoLA list must cover the layers" "describes 3 layers but model.n_layers is 1" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.num_experts=2x1,4x2
m "bad list item" "moe.num_experts: \"2y1\" is not a count in 1 .. 4096 or a per-layer list" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.num_experts=2y1
m "dynmole aux needs dynmole router" "moe.aux = dynmole is the loss of moe.router = dynmole" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set moe.aux=dynmole
m "plugin target also shared LoRA" "in both lora.targets and moe.targets" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=plugin --set lora.targets=up_proj
m "fused_mlp with LoRA on the FFN" "lora.targets may only name attention projections" -- \
  "$MOLT_BIN" train "$cfg" --set moe.placement=fused_mlp --set lora.targets=q_proj,gate_proj
m "entropy_q out of range" "moe.entropy_q: 3 is out of range" -- \
  "$MOLT_BIN" train "$cfg" --set moe.entropy_q=3
# Layout errors under 2 ranks: every rank stops, the message is printed once.
MPIEXEC=${MPIEXEC:-mpiexec $MOLT_MPIRUN_FLAGS}
m "ep must divide the ranks" "parallel.ep = 4 does not divide the 2 ranks of the job" -- \
  timeout -k 10 60 $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set moe.placement=plugin \
  --set parallel.ep=4 --set log.run_dir="$work/run"
m "capacity needs one micro-batch" "moe.capacity_factor > 0 decides over the whole global batch" -- \
  timeout -k 10 60 $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set moe.placement=plugin \
  --set moe.capacity_factor=1.5 --set train.batch_size=4 --set train.micro_batch=1 \
  --set log.run_dir="$work/run"
[ ! -e "$work/run" ] || fail "a refused layout created its run_dir"
echo "moe_config_errors: ok"

#!/usr/bin/env bash
# launch/bench --factor — FactorLLM's speed/quality trade (issue 7): a dense
# model trained on the task suite is factorized (molt factorize) into N
# experts with each grouping method, only the routers train for a fixed short
# budget (configs/factorllm.ini: PA + balance loss), and the result is scored
# against the dense model on the same held-out examples:
#   quality  mean task accuracy and eval loss, relative to dense
#   speed    inference tokens/s relative to dense, both timed in one process,
#            alternating, best of R forwards (tests/bench/factor_speed.c)
#   flops    FFN FLOPs per token relative to dense: k/N of the experts plus
#            the router (2 d N), against 3 x 2 d d_ff
# Cases: N=4 with k=1 and k=2, N=8 with k=2; methods contiguous, random,
# cluster. The paper's target: 85% of the quality at >= 1.3x the speed.
# usage: launch/bench --factor [--base DENSE.h5] [--steps S] [--rounds R] [--build DIR]
#   --base   the dense weights (default runs/quickstart/base/final.h5, which
#            ./launch/quickstart makes; trained here when missing)
#   --steps  router-training steps per case (default 150)
#   --rounds timed forwards per model (default 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
source launch/env.sh
base=runs/quickstart/base/final.h5 steps=150 rounds=20 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    -h|--help) molt_usage "$0"; exit 0 ;;
    *) echo "bench --factor: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
log() { echo "bench --factor: $*" >&2; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$MOLT_NCORES" --target molt factor_speed >"$build/bench-build.log" 2>&1 ||
  { tail -20 "$build/bench-build.log" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
molt_threads 2
mpi() { mpirun $MOLT_MPIRUN_FLAGS -np 2 -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x OMP_WAIT_POLICY "$build/molt" "$@"; }
if [ ! -f "$base" ]; then
  log "no $base: training the dense base (configs/base.ini, ~1-2 min)"
  mpi train configs/base.ini --set log.run_dir="$T/base" >"$T/base.log" 2>&1 || { tail "$T/base.log" >&2; exit 1; }
  base=$T/base/final.h5
fi
log "dense: $base; scoring it (eval only)"
mpi train configs/base.ini --set model.init_from="$base" --set train.steps=0 --set train.warmup=0 \
  --set log.run_dir="$T/dense" >"$T/dense.log" 2>&1 || { tail "$T/dense.log" >&2; exit 1; }
field() { grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2 | tr -d '\t '; }
dacc=$(field "$T/dense/eval.json" mean) dloss=$(field "$T/dense/eval.json" eval_loss)
read -r d dff < <(awk -F' = ' '$1 == "d_model" { d = $2 } $1 == "d_ff" { f = $2 } END { print d, f }' configs/factorllm.ini)
printf '| N | k | method | accuracy | quality kept | eval loss | vs dense | tok/s | dense tok/s | speed | FFN FLOPs | MoE time: route/expert/combine |\n'
printf '|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n'
printf '| dense | – | – | %.1f%% | 100%% | %.4f | – | – | – | 1.00x | 100%% | – |\n' "$(awk -v a="$dacc" 'BEGIN { print 100 * a }')" "$dloss"
for nk in 4:1 4:2 8:2; do
  N=${nk%:*} k=${nk#*:}
  for m in contiguous random cluster; do
    c="$T/$N-$k-$m"
    sets=(--set moe.num_experts="$N" --set moe.top_k="$k" --set factor.method="$m")
    mpi factorize configs/factorllm.ini --ckpt "$base" --out "$c.h5" "${sets[@]}" >"$c.fz.log" 2>&1 ||
      { tail "$c.fz.log" >&2; exit 1; }
    mpi train configs/factorllm.ini "${sets[@]}" --set model.init_from="$c.h5" --set train.steps="$steps" \
      --set log.run_dir="$c" >"$c.log" 2>&1 || { tail "$c.log" >&2; exit 1; }
    acc=$(field "$c/eval.json" mean) loss=$(field "$c/eval.json" eval_loss)
    read -r dtok mtok ratio sroute sexp scomb < <(OMP_NUM_THREADS=$MOLT_NCORES OPENBLAS_NUM_THREADS=$MOLT_NCORES \
      "$build/tests/factor_speed" configs/base.ini "$base" configs/factorllm.ini "$c/final.h5" "$rounds" "${sets[@]}")
    awk -v N="$N" -v k="$k" -v m="$m" -v a="$acc" -v da="$dacc" -v l="$loss" -v dl="$dloss" \
        -v mt="$mtok" -v dt="$dtok" -v r="$ratio" -v d="$d" -v f="$dff" \
        -v sr="$sroute" -v se="$sexp" -v sc="$scomb" 'BEGIN {
      flops = (k / N * 6 * d * f + 2 * d * N) / (6 * d * f)
      printf "| %d | %d | %s | %.1f%% | %.0f%% | %.4f | %+.4f | %.0f | %.0f | %.2fx | %.0f%% | %.0f/%.0f/%.0f%% |\n",
             N, k, m, 100 * a, (da > 0 ? 100 * a / da : 0), l, l - dl, mt, dt, r, 100 * flops,
             100 * sr, 100 * se, 100 * sc }'
  done
done
log "router training: $steps steps each (configs/factorllm.ini); speed: best of $rounds forwards, $MOLT_NCORES threads"

# lora.init = svd (PiSSA, DESIGN §6) on a briefly trained tiny dense base:
# with shared LoRA and plugin experts under the topk, topp, dynmole and soft
# routers, at np 1, 2 and 4 (the SVD is ScaLAPACK's over the ranks), the
# logits right after the initialisation equal the base model's within 1e-5,
# no adapter is zero, and expert e's s·B_e A_e holds the base's triplets
# e·r … (tests/ref/lora_svd_check.c). Then molt train runs with it.
source "$MOLT_SRC/tests/mpi/lib.bash"
cd "$work"
cfg="$MOLT_SRC/tests/configs/tiny_dense.ini" run dense 2
pissa="$MOLT_SRC/tests/configs/tiny_pissa.ini"
for np in 1 2 4; do
  for router in "topk" "topp" "dynmole --set moe.aux=dynmole" "soft"; do
    # shellcheck disable=SC2086 # router carries extra --set pairs
    $MPIEXEC -np $np "$MOLT_TESTBIN/lora_svd_check" "$pissa" 1e-5 --set model.init_from="$work/dense/final.h5" \
      --set moe.router=$router >check.log 2>&1 || { cat check.log; echo "FAIL: np $np router $router"; exit 1; }
    echo "np $np $router: $(grep lora_svd_check: check.log | sed 's/.*: logits/logits/')"
  done
done
cfg=$pissa run train 2 --set model.init_from="$work/dense/final.h5"
grep -q '"loss"' train/metrics.jsonl || { echo "FAIL: no training with lora.init = svd"; exit 1; }
if "$MOLT_BIN" train "$MOLT_SRC/tests/configs/tiny_factor.ini" --set lora.init=svd \
    --set log.run_dir="$work/bad" >bad.log 2>&1; then echo "FAIL: svd accepted on ffn"; exit 1; fi
grep -q "lora.init = svd keeps the output only for shared LoRA and plugin experts" bad.log ||
  { cat bad.log; echo "FAIL: refusal message"; exit 1; }
echo ok

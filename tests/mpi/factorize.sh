# molt factorize (FactorLLM, DESIGN §6) on a briefly trained tiny dense model:
# for contiguous, random and cluster grouping, at np 1 and np 4, every expert
# has d_ff/N neurons, the experts hold every dense neuron once, and with all
# experts selected at weight 1 (moe.top_k = N) the logits equal the dense
# model's within 1e-5 (tests/ref/factor_check). Controls: top-1 routing does
# differ; contiguous and random give identical files at np 1 and 4. The
# distributed SVD is also checked on the trained gate_proj (svd_check); with
# factor.train = router,experts and pa the dense FFN is stored as the frozen
# teacher; and a factorized file trains as model.init_from.
source "$MOLT_SRC/tests/mpi/lib.bash"
cd "$work"
dense="$MOLT_SRC/tests/configs/tiny_dense.ini" moe="$MOLT_SRC/tests/configs/tiny_factor.ini"
cfg=$dense run dense 2
for np in 1 2 4; do
  $MPIEXEC -np $np "$MOLT_TESTBIN/svd_check" dense/final.h5 /base/model.layers.0.mlp.gate_proj.weight 96 32 \
    >svd$np.log 2>&1 || { cat svd$np.log; echo "FAIL: svd_check on the trained gate_proj at np $np"; exit 1; }
  grep '  trained ' svd$np.log
done
for np in 1 4; do
  for m in contiguous random cluster; do
    $MPIEXEC -np $np "$MOLT_BIN" factorize "$moe" --ckpt dense/final.h5 --out $m.$np.h5 \
      --set factor.method=$m >fz.$m.$np.log 2>&1 || { cat fz.$m.$np.log; echo "FAIL: factorize $m np $np"; exit 1; }
    grep -q "method $m, $np rank(s)" fz.$m.$np.log || { cat fz.$m.$np.log; echo "FAIL: factorize banner"; exit 1; }
    "$MOLT_TESTBIN/factor_check" "$dense" dense/final.h5 "$moe" $m.$np.h5 1e-5 --set moe.top_k=4 ||
      { echo "FAIL: $m at np $np is not the dense model with every expert selected"; exit 1; }
    if "$MOLT_TESTBIN/factor_check" "$dense" dense/final.h5 "$moe" $m.$np.h5 1e-5 --set moe.top_k=1 >ctl.log 2>&1; then
      cat ctl.log; echo "FAIL: control: top-1 routing should change the logits"; exit 1
    fi
  done
  [ "$(grep -c 'not in their contiguous expert' fz.contiguous.$np.log)" = 2 ] && grep -q '(0 neurons not' fz.contiguous.$np.log ||
    { cat fz.contiguous.$np.log; echo "FAIL: contiguous moved neurons"; exit 1; }
  ! grep -q '(0 neurons not' fz.random.$np.log fz.cluster.$np.log || { echo "FAIL: random/cluster kept the contiguous split"; exit 1; }
done
for m in contiguous random; do
  h5diff $m.1.h5 $m.4.h5 >/dev/null || { echo "FAIL: $m differs between np 1 and np 4"; exit 1; }
done
h5diff -q cluster.1.h5 cluster.4.h5 >/dev/null && echo "cluster: np 1 and np 4 identical" ||
  echo "cluster: np 1 and np 4 differ (SVD rounding of the 2x2 grid moved a k-means tie)"
# factor.train = router,experts with pa: the dense FFN is stored, frozen, as the teacher
"$MOLT_BIN" factorize "$moe" --ckpt dense/final.h5 --out teach.h5 --set moe.aux=pa \
  --set factor.train=router,experts >teach.log 2>&1 || { cat teach.log; echo "FAIL: factorize with a teacher"; exit 1; }
for p in gate_proj up_proj down_proj; do
  h5diff teach.h5 dense/final.h5 /teacher/model.layers.1.mlp.$p.weight /base/model.layers.1.mlp.$p.weight >/dev/null ||
    { echo "FAIL: the stored teacher's $p is not the dense one"; exit 1; }
done
! h5ls -r cluster.1.h5 | grep -q teacher || { echo "FAIL: a teacher stored without need"; exit 1; }
cfg=$moe run ft_teacher 2 --set model.init_from="$work/teach.h5" --set moe.aux=pa \
  --set factor.train=router,experts --set factor.method=contiguous --set train.steps=4
grep -q '"aux_loss"' ft_teacher/metrics.jsonl || { echo "FAIL: no pa training with a teacher"; exit 1; }
# the factorized model fine-tunes: init_from loads its experts (top-1 of 4)
cfg=$moe run ft 2 --set model.init_from="$work/cluster.4.h5" --set train.steps=4
grep -q 'loss' ft/metrics.jsonl || { echo "FAIL: no training from the factorized file"; exit 1; }
# errors: a dense config, and experts that do not split d_ff
expect_fail() { if "$@" >err.log 2>&1; then echo "FAIL: accepted: $*"; exit 1; fi; grep -qF -- "$pat" err.log || { cat err.log; echo "FAIL: message lacks '$pat'"; exit 1; }; }
pat="moe.placement must be ffn" expect_fail "$MOLT_BIN" factorize "$dense" --ckpt dense/final.h5 --out x.h5
pat="do not split model.d_ff 96" expect_fail "$MOLT_BIN" factorize "$moe" --ckpt dense/final.h5 --out x.h5 --set moe.num_experts=5
pat="not a dense model's weights" expect_fail "$MOLT_BIN" factorize "$moe" --ckpt cluster.1.h5 --out x.h5
pat="--ckpt DENSE.h5 and --out MOE.h5 are required" expect_fail "$MOLT_BIN" factorize "$moe" --ckpt dense/final.h5
echo ok

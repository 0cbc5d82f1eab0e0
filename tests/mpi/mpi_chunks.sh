#!/usr/bin/env bash
# MPI counts past INT_MAX (issue 14). A buffer of more than INT_MAX elements
# (8 GiB of floats: a full 7B fine-tune's gradients) goes through MPI in chunks,
# and an exchange whose element counts would overflow counts rows or whole
# expert tensors of a derived datatype (include/molt/coll.h). Such sizes do
# not fit this machine, so the test hook MOLT_FAULT_MPI_CHUNK lowers the limit
# to 257 elements: every gradient all-reduce, replicate gather and reduce-
# scatter, MoE all-to-all and config broadcast then takes its chunked or
# derived-type path. Each run must equal the same run with the ordinary
# limit bit for bit: losses, grad norms and every dataset of final.h5. So must
# molt eval's scores with its broadcast and reduction in chunks of 7.
# Every reducing communicator here has two ranks, where a sum's bits cannot
# depend on how MPI splits the message (a + b == b + a); the 4-rank world
# all-reduce is pinned to recursive doubling, whose per-element order does
# not depend on the message length either (Open MPI's default may switch to
# ring or Rabenseifner algorithms with the length, whose per-element order
# depends on where the message is split: the last bits of a float sum could
# then differ, chunked or not).
source "$MOLT_SRC/tests/mpi/lib.bash"
[ "${MOLT_FAULTS:-0}" = 1 ] || { echo "skipped: build without -DMOLT_FAULT_INJECTION=ON"; exit 77; }
cfg="$MOLT_SRC/tests/configs/moe_dp.ini"
args=(--set train.steps=16 --set eval.samples=8)
pin="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 3"

# name np ep [extra --set ...]
for layout in "dp2 2 1" "ep2 2 2" "dp2ep2 4 2" "replicate 4 2 --set moe.dispatch=replicate"; do
  read -r name np ep extra <<<"$layout"
  set -- ${extra:-}
  mpi_args="$pin" run "$name-plain" "$np" "${args[@]}" --set parallel.ep="$ep" "$@"
  MOLT_FAULT_MPI_CHUNK=257 mpi_args="$pin -x MOLT_FAULT_MPI_CHUNK" run "$name-chunked" "$np" \
    "${args[@]}" --set parallel.ep="$ep" "$@"
  bitwise "$work/$name-plain" "$work/$name-chunked"
done
# molt eval: the tasks file's broadcast and the log-likelihoods' reduction,
# in chunks of 7 elements, give the same scores byte for byte
mc="$MOLT_SRC/tests/ref/data/mc_small.jsonl"
for k in plain chunked; do
  knob=(); [ $k = plain ] || knob=(-x MOLT_FAULT_MPI_CHUNK=7)
  $MPIEXEC $pin "${knob[@]}" -np 2 "$MOLT_BIN" eval "$cfg" --ckpt "$work/dp2-plain/final.h5" \
    --tasks "$mc" --log-samples "$work/eval-$k.jsonl" >"$work/eval-$k.out" 2>&1 ||
    { cat "$work/eval-$k.out"; exit 1; }
done
[ "$(grep -c . "$work/eval-plain.jsonl")" -ge 10 ] && cmp "$work/eval-plain.jsonl" "$work/eval-chunked.jsonl" ||
  { echo "molt eval: chunked scores differ from plain ones" >&2; exit 1; }
echo "molt eval: $(grep -c . "$work/eval-plain.jsonl") scored examples identical with 7-element chunks"
echo "mpi_chunks: ok"

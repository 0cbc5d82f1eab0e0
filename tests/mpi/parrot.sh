#!/usr/bin/env bash
# Parrot (issue 8, DESIGN §4) on mmmb_lite at test size:
#  1. stage 1 (projector only, moe.enable = false) trains at np 2 and writes
#     final.h5 with /projector and no MoE;
#  2. stage 2 (projector + xattn MoE + LoRA) starts from it (init_from): its
#     first loss equals the loss stage 1's weights give, and at (dp, ep) =
#     (1,1) (2,1) (1,2) (2,2), and (2,2) with moe.dispatch = replicate, the
#     loss of every step and the final weights agree within 1e-5;
#  3. stage 2 resumes bit for bit from its step-15 checkpoint at (1,1) and at
#     (2,2), the checkpoint holding projector, router, experts and moments;
#  4. eval.json reports per-language accuracy and the language x expert
#     table with its mutual information; launch/plot draws it; `molt eval`
#     of the final weights at another layout prints the same accuracies;
#     `molt export` names the projector and the module LLaVA/PEFT-style.
source "$MOLT_SRC/tests/mpi/lib.bash"
cfg="$MOLT_SRC/tests/configs/parrot_tiny.ini"

run stage1 2 --set moe.enable=false --set train.steps=15
s1="$work/stage1/final.h5"
"$MOLT_PYTHON" - "$s1" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1])
names = []
f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
proj = [n for n in names if n.startswith("projector/")]
assert sorted(proj) == ["projector/model.mm_projector.%s" % s for s in
                        ("0.bias", "0.weight", "2.bias", "2.weight")], proj
assert not [n for n in names if "mm_moe" in n], "stage 1 has no MoE"
print("stage 1: %d datasets, projector %s" % (len(names), ", ".join(p.split(".", 2)[-1] for p in proj)))
PY

# 2. layouts of stage 2
s2=(--set model.init_from="$s1" --set train.steps=20)
runs=()
for l in 1:1 2:1 1:2 2:2; do
  dp=${l%:*} ep=${l#*:}
  run "s2-dp$dp-ep$ep" $((dp * ep)) --set parallel.ep=$ep "${s2[@]}"
  runs+=("$work/s2-dp$dp-ep$ep")
done
run s2-replicate 4 --set parallel.ep=2 --set moe.dispatch=replicate "${s2[@]}"
runs+=("$work/s2-replicate")
grep -q 'layout world 4 = dp 2 x ep 2' "$work/s2-dp2-ep2.log" || { cat "$work/s2-dp2-ep2.log"; exit 1; }
"$MOLT_PYTHON" "$MOLT_SRC/tests/ref/compare_runs.py" --tol 1e-5 "${runs[@]}"

# stage 2 starts from stage 1's projector: a 0-step run's final weights hold it
# exactly, next to a fresh router and experts.
run s2-zero 1 "${s2[@]}" --set train.steps=0
"$MOLT_PYTHON" - "$s1" "$work/s2-zero/final.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
for n in ("0.weight", "0.bias", "2.weight", "2.bias"):
    k = "projector/model.mm_projector." + n
    assert np.array_equal(a[k][()], b[k][()]), k + " differs from stage 1"
assert "routers/model.mm_moe/weight" in b and "experts/model.mm_moe/expert_003/down_proj.weight" in b
print("stage 2 starts from stage 1's projector, with a fresh router and 4 experts")
PY

# 3. resume, bitwise at the same layout
for l in 1:1 2:2; do
  dp=${l%:*} ep=${l#*:} np=$((dp * ep))
  run "r-$l-straight" $np --set parallel.ep=$ep --set checkpoint.every=15 \
    --set checkpoint.dir="$work/ck-$l" "${s2[@]}" --set train.steps=30
  ck=$(find "$work/ck-$l" -name step_00000015.h5)
  [ -n "$ck" ] || { echo "no step-15 checkpoint in $work/ck-$l" >&2; exit 1; }
  "$MOLT_PYTHON" - "$ck" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1])
need = ["projector/model.mm_projector.0.weight", "routers/model.mm_moe/weight",
        "experts/model.mm_moe/expert_000/gate_proj.weight",
        "optim/projector/model.mm_projector.2.bias/m", "optim/routers/model.mm_moe/weight/v",
        "optim/experts/model.mm_moe/expert_003/down_proj.weight/m"]
miss = [n for n in need if n not in f]
assert not miss, "checkpoint lacks " + ", ".join(miss)
PY
  run "r-$l-resumed" $np --set parallel.ep=$ep --set checkpoint.dir="$work/ck2-$l" "${s2[@]}" \
    --set train.steps=30 --resume "$ck"
  grep -q "resumed from .*step_00000015.h5 at step 15" "$work/r-$l-resumed.log" \
    || { cat "$work/r-$l-resumed.log"; exit 1; }
  bitwise "$work/r-$l-straight" "$work/r-$l-resumed"
done

# 4. the evaluation: languages, routing table, mutual information; the plot
"$MOLT_PYTHON" - "$work/s2-dp2-ep2/eval.json" "$work/s2-dp1-ep1/eval.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["tasks"] for p in sys.argv[1:3])
langs = ["en", "zh", "pt", "ar", "tr", "ru"]
for l in langs:
    assert 0 <= a[l] <= 1, (l, a[l])
    assert a[l] == b[l], "accuracy of %s differs between layouts: %s %s" % (l, a[l], b[l])
r = a["routing"]
assert r["site"] == "model.mm_moe", r
rows = r["tasks"]
assert sorted(rows) == sorted(langs), rows
assert all(sum(rows[l]) == 6 for l in langs), rows  # one choice per question
assert r == b["routing"], "routing differs between layouts"
mi = r["mutual_information_bits"]
assert 0 <= mi <= 2.6, mi
print("eval: %s; mutual information %.3f bits" % (" ".join("%s %.2f" % (l, a[l]) for l in langs), mi))
PY
MOLT_BIN="$MOLT_BIN" "$MOLT_SRC/launch/plot" "$work/s2-dp2-ep2" --out "$work/plots" >"$work/plot.log" 2>&1 \
  || { cat "$work/plot.log"; exit 1; }
ls "$work/plots"/*routing.png >/dev/null || { cat "$work/plot.log"; echo "no routing plot" >&2; exit 1; }
$MPIEXEC -np 2 "$MOLT_BIN" eval "$cfg" --set parallel.ep=2 --ckpt "$work/s2-dp2-ep2/final.h5" \
  >"$work/eval.log" 2>&1 || { cat "$work/eval.log"; exit 1; }
for l in en zh pt ar tr ru; do
  want=$("$MOLT_PYTHON" -c "import json,sys; print('%.1f%%' % (100 * json.load(open(sys.argv[1]))['tasks'][sys.argv[2]]))" \
    "$work/s2-dp2-ep2/eval.json" $l)
  grep -qE "^\| $l +\| +$want \|" "$work/eval.log" || { cat "$work/eval.log"; echo "molt eval: $l is not $want" >&2; exit 1; }
done
grep -q "mutual information (language; expert)" "$work/eval.log" || { cat "$work/eval.log"; exit 1; }
"$MOLT_BIN" export "$work/s2-dp2-ep2/final.h5" --out "$work/export" >"$work/export.log" 2>&1 \
  || { cat "$work/export.log"; exit 1; }
"$MOLT_PYTHON" - "$work/export" <<'PY'
import json, struct, sys
d = sys.argv[1]
with open(d + "/adapter_model.safetensors", "rb") as f:
    names = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
pre = "base_model.model.model."
need = [pre + "mm_projector.0.weight", pre + "mm_projector.2.bias", pre + "mm_moe.router.weight",
        pre + "mm_moe.experts.3.down_proj.weight"]
assert all(n in names for n in need), [n for n in need if n not in names]
moe = json.load(open(d + "/molt_moe.json"))
assert moe["placement"] == "xattn" and moe["xattn_experts"] == 4 and moe["projector"] == "mlp2x_gelu", moe
print("export: projector and xattn module named; molt_moe.json records the placement")
PY
echo "parrot: layouts, resume, evaluation and export OK"

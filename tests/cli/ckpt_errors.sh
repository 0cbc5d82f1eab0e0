#!/usr/bin/env bash
# Damaged checkpoints (issue 5): `molt ckpt verify` and `molt train --resume`
# refuse a flipped byte inside a dataset, a truncated file, a wrong format
# version, a missing external base (peft) and a config that changes the
# model's shape, each with exit 2 and
# the file (and dataset) named -- never a crash. A sound checkpoint verifies,
# and `molt ckpt inspect` lists its tree.
source "$MOLT_SRC/tests/cli/lib.bash"
cfg="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"
moe=(--set moe.placement=plugin --set moe.num_experts=2 --set train.steps=2)
run "make a checkpoint" 0 "$MOLT_BIN" train "$cfg" "${moe[@]}" --set checkpoint.every=2 \
  --set log.run_dir=run --set checkpoint.dir=ck
ck=ck/run/step_00000002.h5
[ -f "$ck" ] && [ "$(cat ck/run/latest)" = step_00000002.h5 ] || fail "checkpoint or latest missing"
# interop: h5py (with its own Fletcher32 check) reads every adapter and moment
"$MOLT_PYTHON" - "$ck" <<'PY' || fail "h5py could not read the checkpoint"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] == b"molt-ckpt" or f.attrs["format"] == "molt-ckpt", f.attrs["format"]
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    adapters = [n for n in names if n.startswith("adapters/")]
    assert len(adapters) >= 4 and all(np.isfinite(f[n][()]).all() for n in names), names
    assert all(f[n].fletcher32 for n in names)
print(f"h5py read {len(names)} datasets, {len(adapters)} adapters")
PY
run "verify a sound checkpoint" 0 "$MOLT_BIN" ckpt verify "$ck"
grep -q "checksums OK, every parameter and moment of its config present" out.txt || fail "verify output"
run "inspect" 0 "$MOLT_BIN" ckpt inspect "$ck"
grep -q "training checkpoint, step 2" out.txt && grep -q "/optim/adapters/.*expert_001/lora_B/v .*float32" out.txt \
  || { cat out.txt; fail "inspect output"; }

# retention: the newest checkpoint.keep plus multiples of keep_every
run "retention" 0 "$MOLT_BIN" train "$cfg" "${moe[@]}" --set train.steps=5 --set checkpoint.every=1 \
  --set checkpoint.keep=2 --set checkpoint.keep_every=2 --set log.run_dir=keep --set checkpoint.dir=ck
[ "$(cd ck/keep && ls step_*.h5 | tr '\n' ' ')" = "step_00000002.h5 step_00000004.h5 step_00000005.h5 " ] \
  || fail "retention kept: $(ls ck/keep)"
[ "$(cat ck/keep/latest)" = step_00000005.h5 ] || fail "latest after retention"

# a flipped byte inside one dataset's chunk
cp "$ck" flip.h5
ds=adapters/model.layers.0.mlp.up_proj/expert_001/lora_A
"$MOLT_PYTHON" - flip.h5 "$ds" <<'PY'
import sys, h5py
path, ds = sys.argv[1:3]
with h5py.File(path, "r") as f:
    off = f[ds].id.get_chunk_info(0).byte_offset
with open(path, "r+b") as f:
    f.seek(off + 5); b = f.read(1); f.seek(off + 5); f.write(bytes([b[0] ^ 0x40]))
PY
expect "flipped byte: verify" 2 "flip.h5: dataset /$ds is corrupt" -- "$MOLT_BIN" ckpt verify flip.h5
expect "flipped byte: resume" 2 "flip.h5: cannot read dataset /$ds" -- \
  "$MOLT_BIN" train "$cfg" "${moe[@]}" --set log.run_dir=r1 --resume flip.h5

# truncated
head -c 20000 "$ck" > trunc.h5
expect "truncated: verify" 2 "trunc.h5" -- "$MOLT_BIN" ckpt verify trunc.h5
expect "truncated: resume" 2 "trunc.h5" -- \
  "$MOLT_BIN" train "$cfg" "${moe[@]}" --set log.run_dir=r2 --resume trunc.h5

# wrong format version
cp "$ck" version.h5
"$MOLT_PYTHON" -c "import h5py; f = h5py.File('version.h5', 'r+'); f.attrs.modify('version', 99)"
expect "wrong version" 2 "version.h5: format version 99; this molt reads version 1" -- \
  "$MOLT_BIN" ckpt verify version.h5
expect "wrong version: resume" 2 "version.h5: format version 99" -- \
  "$MOLT_BIN" train "$cfg" "${moe[@]}" --set log.run_dir=r3 --resume version.h5

# a config that changes the model's shape; a compatible change is listed
expect "changed expert count" 2 "was trained with moe.num_experts = 2; this config has 3" -- \
  "$MOLT_BIN" train "$cfg" "${moe[@]}" --set moe.num_experts=3 --set log.run_dir=r4 --resume "$ck"
# keys that change which tensors exist or train (not only shapes), each
# refused at once with the key named -- not late with a dataset missing
fac=("$MOLT_SRC/tests/configs/tiny_factor.ini" --set train.steps=2 --set checkpoint.dir=ck)
run "factor checkpoint" 0 "$MOLT_BIN" train "${fac[@]}" --set checkpoint.every=2 --set log.run_dir=fac
expect "factor.train changed" 2 "was trained with factor.train = router; this config has router,experts" -- \
  "$MOLT_BIN" train "${fac[@]}" --set factor.train=router,experts --set log.run_dir=f1 --resume ck/fac/step_00000002.h5
expect "moe.aux gains pa" 2 "was trained with moe.aux = none; this config has pa" -- \
  "$MOLT_BIN" train "${fac[@]}" --set moe.aux=pa --set log.run_dir=f2 --resume ck/fac/step_00000002.h5
run "moe.aux change without pa" 0 "$MOLT_BIN" train "${fac[@]}" --set moe.aux=balance \
  --set train.steps=3 --set log.run_dir=f3 --resume ck/fac/step_00000002.h5
grep -q "resume: moe.aux changed: none -> balance" out.txt || { cat out.txt; fail "aux change not listed"; }
run "compatible change" 0 "$MOLT_BIN" train "$cfg" "${moe[@]}" --set train.steps=3 \
  --set train.lr=1e-4 --set log.run_dir=r5 --resume "$ck"
grep -q "resume: train.lr changed" out.txt || { cat out.txt; fail "lr change not listed"; }

# peft: the frozen base sits once beside the step files, linked; a missing base is named
peft=(--set model.mode=peft --set lora.targets=q_proj,v_proj --set train.steps=2)
run "peft checkpoint" 0 "$MOLT_BIN" train "$cfg" "${peft[@]}" --set checkpoint.every=1 \
  --set log.run_dir=peft --set checkpoint.dir=ck
[ "$(ls ck/peft/base_*.h5 | wc -l)" = 1 ] || fail "expected one shared base file"
run "peft verify" 0 "$MOLT_BIN" ckpt verify ck/peft/step_00000002.h5
expect "lora.train_norms changed" 2 "was trained with lora.train_norms = false; this config has true" -- \
  "$MOLT_BIN" train "$cfg" "${peft[@]}" --set lora.train_norms=true --set log.run_dir=peft \
  --set checkpoint.dir=ck --resume
mv ck/peft/base_*.h5 .
expect "missing base: verify" 2 "step_00000002.h5: its frozen base weights" "are missing" -- \
  "$MOLT_BIN" ckpt verify ck/peft/step_00000002.h5
expect "missing base: resume" 2 "its frozen base weights" -- \
  "$MOLT_BIN" train "$cfg" "${peft[@]}" --set log.run_dir=peft --set checkpoint.dir=ck --resume

# not a checkpoint at all; no checkpoint to resume
echo "hello" > text.h5
expect "not HDF5" 2 "text.h5: not a readable HDF5 file" -- "$MOLT_BIN" ckpt verify text.h5
expect "nothing to resume" 2 "no checkpoint to resume" -- \
  "$MOLT_BIN" train "$cfg" "${moe[@]}" --set log.run_dir=fresh --set checkpoint.dir=none --resume
echo "ckpt_errors: ok"

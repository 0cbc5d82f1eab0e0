#!/usr/bin/env bash
# Bad Parrot settings through `molt train` (tests/configs/parrot_tiny.ini with
# --set overrides): the xattn MoE without a projector or with a router, aux
# loss or expert width it does not take; feature sources without a projector
# and a projector without features; a bad data.lang_mix; the features source
# without its HDF5 file, with a /features of the wrong shape, and with a JSONL
# line whose "sample" is out of range; eval files too long or half-named (checked
# before training); molt eval --tasks and molt export --merged of a trained
# feature model. Each exits 2 with one error naming the
# key or the file (and line), and creates no run_dir. Two controls show that
# the same runs without the fault train: the features files, and mmmb_lite
# captions without a projector. One line per check; exit 0 only if all pass.
source "$MOLT_SRC/tests/cli/lib.bash"
cfg="$MOLT_SRC/tests/configs/parrot_tiny.ini"

# train [more --set]: one step of the tiny Parrot config into $work/run.
train() {
  "$MOLT_BIN" train "$cfg" --set train.steps=1 --set log.run_dir="$work/run" "$@"
}
# features H5 JSONL [more --set]: the same with data.source = features.
features() {
  local h5=$1 jsonl=$2
  shift 2
  train --set data.source=features --set data.train_features="$h5" \
    --set data.train_path="$jsonl" "$@"
}

failed=0
# check WHAT RC PATTERN... -- COMMAND...: as lib.bash's expect, but report and go on.
check() {
  if (expect "$@"); then echo "ok   $1"; else echo "FAIL $1"; failed=$((failed + 1)); fi
}
# control WHAT COMMAND...: COMMAND trains (exit 0); its run_dir is removed after.
control() {
  local what=$1
  shift
  if (run "$what" 0 "$@" && [ -s "$work/run/final.h5" ]); then echo "ok   $what"
  else echo "FAIL $what"; failed=$((failed + 1)); fi
  rm -rf "$work/run"
}

# Feature files written independently of molt (h5py); parrot_tiny has
# model.feat_tokens = 6 and model.feat_dim = 16.
"$MOLT_PYTHON" - <<'PY' || fail "writing the feature files"
import h5py, numpy as np

rng = np.random.default_rng(0)
for name, shape in (("feat.h5", (4, 6, 16)), ("shape.h5", (4, 5, 16))):
    with h5py.File(name, "w") as f:
        f["features"] = rng.standard_normal(shape).astype(np.float32)
good = ('{"sample": 0, "prompt": "What is this? ", "answer": "cat", "lang": "en"}\n'
        '{"sample": 3, "prompt": "Qual \u00e9 o objeto? ", "choices": ["gato", "c\u00e3o"], '
        '"label": 1, "lang": "pt"}\n')
open("good.jsonl", "w", encoding="utf-8").write(good)
# A line that fits only without its <eos>: 1 + 6 + 30 + 14 + 1 = 52 > seq_len 50 + 1.
open("long.jsonl", "w", encoding="utf-8").write(
    '{"sample": 0, "prompt": "%s", "answer": "%s"}\n' % ("P" * 30, "A" * 14))
# Line 2 names row 4 of a /features with 4 rows.
open("sample.jsonl", "w", encoding="utf-8").write(
    good.splitlines(True)[0] + '{"sample": 4, "prompt": "What is this? ", "answer": "dog"}\n')
PY

check "xattn without model.projector" 2 "moe.placement = xattn" "model.projector = mlp2x_gelu" -- \
  train --set model.projector=none
check "xattn with moe.router = topk" 2 "moe.placement = xattn" "moe.router = soft, not topk" -- \
  train --set moe.router=topk
check "xattn with moe.aux = balance" 2 "moe.placement = xattn has no auxiliary loss" \
  "leave moe.aux empty" -- train --set moe.aux=balance
check "xattn without moe.expert_d_ff" 2 "moe.placement = xattn needs moe.expert_d_ff" -- \
  train --set moe.expert_d_ff=0
check "mmmb_lite without a projector" 2 "data.source = mmmb_lite carries feature tokens" \
  "model.projector = mlp2x_gelu" -- train --set moe.placement=none --set model.projector=none
control "control: mmmb_lite captions without a projector train" \
  train --set moe.placement=none --set model.projector=none --set data.mmmb_caption=true
check "projector with data.source = tasks" 2 "model.projector = mlp2x_gelu needs feature inputs" \
  "data.source = mmmb_lite or features" -- train --set data.source=tasks
check "data.lang_mix = xx:1" 2 "data.lang_mix: unknown language 'xx'" -- \
  train --set data.lang_mix=xx:1
check "features without data.train_features" 2 \
  "data.source = features needs data.train_features" -- \
  train --set data.source=features --set data.train_path=good.jsonl
control "control: the features files train" features feat.h5 good.jsonl
check "/features of the wrong shape" 2 "shape.h5: /features is [4, 5, 16]" \
  "model.feat_tokens = 6" -- features shape.h5 good.jsonl
check "JSONL line with a bad \"sample\"" 2 "sample.jsonl:2: \"sample\" must be an integer in [0, 4)" \
  -- features feat.h5 sample.jsonl
if [ -e "$work/run" ]; then echo "FAIL a refused run created its run_dir"; failed=$((failed + 1))
else echo "ok   no refused run created its run_dir"; fi

# The eval files are checked before training, not after it.
check "data.eval_path too long for seq_len" 2 "long.jsonl:1: the example needs train.seq_len" -- \
  features feat.h5 good.jsonl --set data.eval_path=long.jsonl --set data.eval_features=feat.h5
check "data.eval_features without data.eval_path" 2 \
  "data.eval_features needs data.eval_path" -- features feat.h5 good.jsonl \
  --set data.eval_features=feat.h5
if [ -e "$work/run" ]; then echo "FAIL a refused run created its run_dir"; failed=$((failed + 1)); fi

# Commands on a trained feature model that cannot apply to it.
train --set train.steps=2 >"$work/trained.log" 2>&1 || { cat "$work/trained.log"; fail "training the model"; }
printf '{"context": "a", "choices": ["b", "c"], "label": 0}\n' >mc.jsonl
check "molt eval --tasks on a feature model" 2 "molt eval --tasks scores text-only JSONL" \
  "model.projector = mlp2x_gelu" -- "$MOLT_BIN" eval "$cfg" --ckpt "$work/run/final.h5" --tasks mc.jsonl
check "molt export --merged with a projector" 2 "this run also has a feature projector" -- \
  "$MOLT_BIN" export "$work/run/final.h5" --out "$work/merged" --merged

[ "$failed" = 0 ] || fail "parrot_errors: $failed check(s) failed"
echo "parrot_errors: ok"

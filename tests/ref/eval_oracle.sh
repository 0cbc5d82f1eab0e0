#!/usr/bin/env bash
# molt eval (issue 5 item 7, DESIGN §8): multiple-choice scores against a
# PyTorch float64 reference, and the same results at any layout.
#   Three tiny models trained 4 steps: dense full + LoRA (final.h5), plugin/
#   DynMoLE peft (a training checkpoint, its base linked), fused_mlp/top-2 of
#   3 experts trained at dp 1 x ep 2 (final.h5). Each is scored on
#   tests/ref/data/mc_small.jsonl (16 examples, 2-4 choices, multi-byte UTF-8,
#   \u escapes, a blank line, an empty context, a context cut to
#   model.max_seq_len) at np 1 and at np 4 with parallel.ep = 2 (--batch 1 for
#   one model, so ranks run empty padding forwards). tests/ref/eval_ref.py
#   checks every choice's loglik within 1e-4 (|molt - ref| / max(1, |ref|)),
#   tokens, bytes, pred, pred_norm, acc and acc_norm; np 4 must equal np 1
#   (same predictions, logliks within 1e-6) and the printed tables, task suite
#   included, must be identical. The task-suite eval loss equals the one the
#   trainer printed for the same weights.
# Then the refusals, exit 2 naming file and line or key: a line that is not
# JSON, a missing key, a label out of range, empty choices, a weights file of
# another model shape.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
mc="$MOLT_SRC/tests/ref/data/mc_small.jsonl"
tiny="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"
moe="$MOLT_SRC/tests/configs/moe_dp.ini"

dense=(--set model.max_seq_len=64 --set lora.targets=q_proj,v_proj --set train.steps=4)
dyn=(--set train.steps=4 --set eval.samples=4)
fused=(--set train.steps=4 --set eval.samples=4 --set moe.placement=fused_mlp
       --set moe.router=topk --set moe.top_k=2 --set moe.aux=balance --set moe.num_experts=3
       --set lora.targets=q_proj,v_proj)

# train NAME NP CONFIG ARGS...: a run in $work/NAME (its log: NAME.train.log)
train() {
  local name=$1 np=$2 cfg=$3
  shift 3
  molt_threads "$np"
  $MPIEXEC -np "$np" "$MOLT_BIN" train "$cfg" --set log.run_dir="$name" "$@" \
    > "$name.train.log" 2>&1 || { cat "$name.train.log"; fail "training $name"; }
}
# evaluate NAME NP CONFIG WEIGHTS ARGS...: molt eval into NAME.out, NAME.jsonl
evaluate() {
  local name=$1 np=$2 cfg=$3 weights=$4
  shift 4
  molt_threads "$np"
  local launch=(env ${leaks:+"ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=$leaks"})
  [ "$np" = 1 ] || launch=($MPIEXEC -np "$np")
  "${launch[@]}" "$MOLT_BIN" eval "$cfg" --ckpt "$weights" --tasks "$mc" \
    --log-samples "$name.jsonl" "$@" > "$name.out" 2> "$name.err" ||
    { cat "$name.out" "$name.err"; fail "molt eval $name"; }
}

train dense 1 "$tiny" "${dense[@]}"
train dyn 1 "$moe" "${dyn[@]}" --set checkpoint.every=2 --set checkpoint.dir=ckpt
train fused 2 "$moe" "${fused[@]}" --set parallel.ep=2

check() { # check NAME CONFIG WEIGHTS NP4-ARGS -- ARGS...
  local name=$1 cfg=$2 weights=$3 np4=$4
  shift 5
  evaluate "$name-np1" 1 "$cfg" "$weights" "$@"
  evaluate "$name-np4" 4 "$cfg" "$weights" --set parallel.ep=2 $np4 "$@"
  grep -q 'layout world 4 = dp 2 x ep 2' "$name-np4.out" || fail "$name: np 4 layout line"
  grep -q '3 with context cut to model.max_seq_len 64' "$name-np1.out" || fail "$name: truncation"
  diff <(grep '^|\|^eval loss' "$name-np1.out") <(grep '^|\|^eval loss' "$name-np4.out") ||
    fail "$name: np 1 and np 4 print different results"
  echo "== $name ($weights)"
  grep '^| .*jsonl' "$name-np1.out"
  "$MOLT_PYTHON" "$MOLT_SRC/tests/ref/eval_ref.py" "$weights" --tasks "$mc" \
    --samples "$name-np1.jsonl" "$name-np4.jsonl" --tol 1e-4 --same-tol 1e-6
}
# LeakSanitizer's exit scan costs seconds per process here: the single-rank
# runs of dense, dyn and two refusals keep it, the others skip it (leaks=0).
leaks=
check dense "$tiny" dense/final.h5 "" -- "${dense[@]}"
check dyn "$moe" ckpt/dyn/step_00000004.h5 "" -- "${dyn[@]}"
leaks=0 check fused "$moe" fused/final.h5 "--batch 1" -- "${fused[@]}"
# the task suite scores what the trainer's final evaluation scored
for m in dense dyn fused; do
  want=$(grep '^eval loss' "$m.train.log") got=$(grep '^eval loss' "$m-np1.out")
  [ "$want" = "$got" ] || fail "$m: task suite '$got', the trainer printed '$want'"
done

# ---- refusals: exit 2, one error naming the file and line (or the key), no
# samples file left behind. refuse NAME PATTERN EVAL-ARGS...
refuse() {
  local name=$1 pat=$2 rc=0
  shift 2
  molt_threads 1
  env ${leaks:+"ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=$leaks"} \
    "$MOLT_BIN" eval "$@" --log-samples "$name.samples.jsonl" > "$name.out" 2> "$name.err" || rc=$?
  [ "$rc" = 2 ] || { cat "$name.err"; fail "$name: exit $rc, expected 2"; }
  grep -qF -- "$pat" "$name.err" || { cat "$name.err"; fail "$name: stderr lacks '$pat'"; }
  [ "$(grep -c ': error: ' "$name.err")" = 1 ] || { cat "$name.err"; fail "$name: not one error"; }
  if ls "$name".samples.jsonl* > /dev/null 2>&1; then fail "$name: left a samples file"; fi
}
good='{"context": "a", "choices": ["b", "c"], "label": 1}'
printf '%s\n\n{"context": "a", "choices": ["b"], "label": 0\n' "$good" > not_json.jsonl
printf '%s\n%s\n{"context": "a", "choices": ["b"]}\n' "$good" "$good" > no_label.jsonl
printf '{"context": "a", "choices": ["b", "c", "d"], "label": 3}\n' > label.jsonl
printf '%s\n{"context": "a", "choices": [], "label": 0}\n' "$good" > empty.jsonl
d=("$tiny" --ckpt dense/final.h5 "${dense[@]}")
refuse not_json 'not_json.jsonl:3: not valid JSON' "${d[@]}" --tasks not_json.jsonl
leaks=0 refuse no_label 'no_label.jsonl:3: missing key "label"' "${d[@]}" \
  --tasks "$mc" no_label.jsonl
leaks=0 refuse label 'label.jsonl:1: "label" 3 is out of range for 3 choices' "${d[@]}" \
  --tasks label.jsonl
leaks=0 refuse empty 'empty.jsonl:2: "choices" is empty' "${d[@]}" --tasks empty.jsonl
refuse shape 'fused/final.h5 was trained with moe.num_experts = 3; this config has 4' \
  "$moe" --ckpt fused/final.h5 "${fused[@]}" --set moe.num_experts=4 --tasks "$mc"
echo "refusals: OK"

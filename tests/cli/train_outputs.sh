#!/usr/bin/env bash
# What a molt train run leaves in log.run_dir, read back by independent
# readers (python json, h5py): config.ini (the printed resolved config, with
# the --set overrides, which molt train accepts again), metrics.jsonl (one JSON
# object per logged step), eval.json and final.h5. A peft run starts from
# final.h5 (model.init_from); a base of the wrong shape or a missing one exits
# 2 naming the dataset and shape, or the path.
source "$MOLT_SRC/tests/cli/lib.bash"

cfg="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"

# 1. A dense run: 2 steps of 2 x 16 tokens, each step logged; lr and d_ff
#    overridden on the command line.
run "dense run" 0 "$MOLT_BIN" train "$cfg" --set train.lr=0.002 --set model.d_ff=48 \
  --set log.run_dir="$work/run1"
cp out.txt run1.out
for f in config.ini metrics.jsonl eval.json final.h5; do
  [ -s "run1/$f" ] || fail "run1/$f missing or empty"
done
if ls run1 | grep -q '\.tmp$'; then fail "temporary file left in run1"; fi
# The overrides, in the [section] they belong to, printed and stored.
for f in run1.out run1/config.ini; do
  sed -n '/^\[train\]/,/^\[/p' "$f" | grep -qx 'lr = 0.002' || fail "$f: [train] lr = 0.002"
  sed -n '/^\[model\]/,/^\[/p' "$f" | grep -qx 'd_ff = 48' || fail "$f: [model] d_ff = 48"
done

"$MOLT_PYTHON" - "$work" <<'PY'
import json, math, sys
import h5py
w = sys.argv[1]
ini = open(f"{w}/run1/config.ini").read()
out = open(f"{w}/run1.out").read()
# The printed resolved config is config.ini, byte for byte.
head = out.index("\n") + 1
assert out[:head].startswith("# molt train ") and "resolved configuration" in out[:head], out[:head]
assert out[head:].startswith(ini + "\n"), "printed config differs from config.ini"

lines = open(f"{w}/run1/metrics.jsonl").read().splitlines()
assert len(lines) == 2, lines
prev = 0.0
for i, line in enumerate(lines, 1):
    m = json.loads(line)
    assert isinstance(m, dict), line
    for k in ("step", "loss", "lr", "grad_norm", "tokens", "tok_s", "elapsed"):
        assert k in m and isinstance(m[k], (int, float)) and math.isfinite(m[k]), (k, line)
    assert m["step"] == i and m["tokens"] == i * 2 * 16, line
    assert 0 < m["loss"] < 20 and m["grad_norm"] > 0 and m["tok_s"] > 0, line
    assert m["elapsed"] >= prev, line
    prev = m["elapsed"]
assert json.loads(lines[0])["lr"] == 0.002, lines[0]   # no warmup: step 1 at peak lr

ev = json.load(open(f"{w}/run1/eval.json"))
assert ev["step"] == 2, ev
assert math.isfinite(ev["tasks"]["eval_loss"]) and 0 <= ev["tasks"]["mean"] <= 1, ev

with h5py.File(f"{w}/run1/final.h5", "r") as f:
    a = f.attrs
    fmt = a["format"]
    assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == "molt-ckpt", fmt
    assert a["version"] == 1 and a["step"] == 2, dict(a)
    cfg = a["config"]
    assert (cfg.decode() if isinstance(cfg, bytes) else cfg) == ini, "final.h5 config attr"
    assert f["base/model.embed_tokens.weight"].shape == (259, 32)
    assert f["base/model.layers.0.mlp.up_proj.weight"].shape == (48, 32)
    assert "lm_head.weight" not in f["base"]      # tied embeddings
PY

# 2. config.ini is a config molt train accepts: run it again for one step; the
#    new resolved config differs from it only where --set said so.
run "re-run of config.ini" 0 "$MOLT_BIN" train run1/config.ini --set train.steps=1 \
  --set log.run_dir="$work/run2"
grep -qx 'steps = 1' run2/config.ini || fail "run2: steps = 1"
diff <(grep -v -e '^steps = ' -e '^run_dir = ' run1/config.ini) \
  <(grep -v -e '^steps = ' -e '^run_dir = ' run2/config.ini) > /dev/null \
  || fail "config.ini does not read back to itself"
[ "$(wc -l < run2/metrics.jsonl)" = 1 ] || fail "run2: one metrics line"

# 3. peft on the dense run's weights: the frozen base it saves is run1's final
#    weights exactly, and only the targeted adapters exist and were trained.
run "peft run" 0 "$MOLT_BIN" train run1/config.ini --set model.mode=peft \
  --set model.init_from="$work/run1/final.h5" --set lora.targets=q_proj,v_proj \
  --set log.run_dir="$work/peft"
grep -q ' frozen parameters' out.txt || fail "peft: no parameter summary"
"$MOLT_PYTHON" - "$work" <<'PY'
import sys
import h5py, numpy as np
w = sys.argv[1]
with h5py.File(f"{w}/run1/final.h5", "r") as a, h5py.File(f"{w}/peft/final.h5", "r") as b:
    names = sorted(a["base"])
    assert names == sorted(b["base"]), (names, sorted(b["base"]))
    for n in names:
        assert np.array_equal(a["base"][n][()], b["base"][n][()]), f"base/{n} not run1's"
    ad = "adapters/model.layers.0.self_attn"
    for p in ("q_proj", "v_proj"):
        assert b[f"{ad}.{p}/shared/lora_A"].shape == (8, 32)
        assert np.abs(b[f"{ad}.{p}/shared/lora_B"][()]).max() > 0, f"{p} lora_B untrained"
    for p in ("k_proj", "o_proj"):
        assert f"{ad}.{p}" not in b, f"{p} has an adapter"
PY

# 4. init_from errors: a base of another width, and no file at all.
run "wrong-shape init_from" 2 "$MOLT_BIN" train run1/config.ini --set model.d_model=64 \
  --set model.init_from="$work/run1/final.h5" --set log.run_dir="$work/bad"
grep -qF "error: $work/run1/final.h5: dataset /base/model.embed_tokens.weight has shape [259,32], expected [259,64]" \
  err.txt || { cat err.txt >&2; fail "wrong-shape init_from: message"; }
run "missing init_from" 2 "$MOLT_BIN" train "$cfg" --set model.init_from="$work/no-such.h5" \
  --set log.run_dir="$work/bad"
grep -qF "error: $work/no-such.h5: " err.txt || { cat err.txt >&2; fail "missing init_from: message"; }
[ ! -e bad ] || fail "a failed run created its run_dir"

# String values stop at 160 characters, so every accepted config can be
# written to config.ini and read back (inih reads lines of <= 199 characters);
# under 2 ranks the refusal is agreed by all ranks, with no hang.
long="$work/$(printf 'd%.0s' $(seq 200))"
run "long run_dir" 2 timeout 60 $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set train.steps=1 \
  --set log.run_dir="$long"
grep -q "log.run_dir: value is .* characters long (limit 160)" err.txt || { cat err.txt >&2; fail "long run_dir: message"; }
echo "train_outputs: ok"

# molt analyze (DESIGN §6) on a trained tiny plugin MoE, against numpy: expert
# diversity (principal angles between span B_e), effective rank of B_e A_e and
# the router load (tests/ref/analyze_oracle.py). Then two experts made equal
# with h5py: their angle is 0, so the site's diversity must drop by exactly
# that pair's share. And a model without experts is refused.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$MOLT_BIN" train "$MOLT_SRC/tests/configs/tiny_moe.ini" --set log.run_dir=r --set checkpoint.every=0 \
  --set lora.r=3 >train.log 2>&1 || { cat train.log; exit 1; }
"$MOLT_BIN" analyze r/final.h5 --json a.json
"$MOLT_PYTHON" "$MOLT_SRC/tests/ref/analyze_oracle.py" r/final.h5 a.json
cp r/final.h5 same.h5
"$MOLT_PYTHON" - <<'PY'
import h5py
with h5py.File("same.h5", "r+") as f:
    g = f["adapters/model.layers.0.mlp.gate_proj"]
    for t in ("lora_A", "lora_B"):
        g["expert_001/" + t][...] = g["expert_000/" + t][...]
PY
"$MOLT_BIN" analyze same.h5 --json same.json >/dev/null
"$MOLT_PYTHON" "$MOLT_SRC/tests/ref/analyze_oracle.py" same.h5 same.json
"$MOLT_PYTHON" - <<'PY'
import json
a = {s["site"]: s for s in json.load(open("a.json"))["sites"]}
b = {s["site"]: s for s in json.load(open("same.json"))["sites"]}
site = "model.layers.0.mlp.gate_proj"
assert b[site]["diversity"] < a[site]["diversity"] - 1e-3, (a[site], b[site])
other = "model.layers.1.mlp.gate_proj"
assert abs(b[other]["diversity"] - a[other]["diversity"]) < 1e-12, "another site changed"
print("analyze: two equal experts lower", site, "diversity",
      round(a[site]["diversity"], 4), "->", round(b[site]["diversity"], 4))
PY
if "$MOLT_BIN" analyze "$PWD/nothing.h5" 2>err.txt; then echo "FAIL: analyzed a missing file"; exit 1; fi
grep -q "not a readable HDF5 file" err.txt || { cat err.txt; exit 1; }
echo ok

#!/usr/bin/env bash
# Every ready config in configs/ trains on its data without error
# (issue 3; the Parrot ones on mmmb_lite): 3 steps on 2 ranks from a random base (model.init_from cleared),
# with router diagnostics and the aux loss logged for the MoE ones.
set -euo pipefail
source "$MOLT_SRC/launch/env.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for cfg in "$MOLT_SRC"/configs/*.ini; do
  name=$(basename "$cfg" .ini)
  if ! $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set model.init_from= --set train.steps=3 \
      --set train.warmup=0 --set eval.samples=4 --set log.every=1 \
      --set log.run_dir="$work/$name" >"$work/$name.log" 2>&1; then
    tail -20 "$work/$name.log"; echo "FAIL: configs/$name.ini"; exit 1
  fi
  "$MOLT_PYTHON" - "$cfg" "$work/$name" <<'PY'
import configparser, json, math, sys
cfg = configparser.ConfigParser(); cfg.read(sys.argv[1])
lines = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
assert len(lines) == 3 and all(math.isfinite(l["loss"]) for l in lines), lines
moe = cfg.get("moe", "placement", fallback="none") != "none" and \
    cfg.getboolean("moe", "enable", fallback=True)  # Parrot stage 1: the module is off
if moe:
    for l in lines:
        assert "aux_loss" in l and l["aux_loss"] >= 0, l
        for site in l["moe"]:
            assert abs(sum(site["load"]) - 1) < 1e-6, site
            assert site["experts_per_token"] >= 1 - 1e-9, site
    ev = json.load(open(sys.argv[2] + "/eval.json"))["tasks"]
    assert "routing" in ev and ev["routing"]["tasks"], ev
print(f"{sys.argv[1].split('/')[-1]}: {len(lines)} steps, loss {lines[-1]['loss']:.4f}"
      + (f", aux {lines[-1]['aux_loss']:.4f}, {len(lines[-1]['moe'])} MoE sites" if moe else ""))
PY
done

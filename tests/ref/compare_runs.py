#!/usr/bin/env python3
"""Compare two or more molt run directories: the loss of every logged step
(metrics.jsonl, max relative difference) and every dataset of final.h5
(relative L2 difference ||a-b||/||b|| per tensor), within a tolerance.
Max-abs weight differences are printed too but not judged: AdamW turns a
rounding-level gradient (1e-12 vs 0, from a different summation order) into an
O(lr) step for that one entry, so single entries may differ by ~lr while the
tensor and the loss curve agree.
usage: compare_runs.py --tol 1e-5 [--weights-tol X] RUN_A RUN_B [RUN_C ...]
The aux_loss of MoE runs is compared like the loss, and the per-site counts of
tokens without an expert and of capacity-cut pairs must be equal.
Exit 0 when every run matches the first, 1 otherwise."""
import argparse, json, sys
import h5py, numpy as np

def losses(run):
    """{step: (loss, aux_loss or None, drop counts)} from metrics.jsonl."""
    def drops(o):
        return [(m["site"], m.get("dropped_tokens"), m.get("capacity_dropped"))
                for m in o.get("moe", [])]
    with open(f"{run}/metrics.jsonl") as f:
        return {int(o["step"]): (o["loss"], o.get("aux_loss"), drops(o)) for o in map(json.loads, f)}

def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)

def weights(run):
    out = {}
    with h5py.File(f"{run}/final.h5", "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--weights-tol", type=float, default=None,
                    help="tolerance of the final weights (default: --tol)")
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    ref_l, ref_w = losses(a.runs[0]), weights(a.runs[0])
    bad = 0
    for run in a.runs[1:]:
        l, w = losses(run), weights(run)
        if l.keys() != ref_l.keys():
            print(f"{run}: logged steps differ"); bad += 1; continue
        worst = max(rel(l[s][0], ref_l[s][0]) for s in l)
        if any((l[s][1] is None) != (ref_l[s][1] is None) for s in l):
            print(f"{run}: aux_loss logged in one run only"); bad += 1; continue
        worst = max([worst] + [rel(l[s][1], ref_l[s][1]) for s in l if l[s][1] is not None])
        if any(l[s][2] != ref_l[s][2] for s in l):
            s = next(s for s in l if l[s][2] != ref_l[s][2])
            print(f"{run}: step {s}: dropped-token counts differ: {l[s][2]} vs {ref_l[s][2]}")
            bad += 1; continue
        werr, wmax = 0.0, 0.0
        if w.keys() != ref_w.keys():
            print(f"{run}: final.h5 datasets differ"); bad += 1; continue
        for k in w:
            a64, b64 = w[k].astype(np.float64), ref_w[k].astype(np.float64)
            werr = max(werr, float(np.linalg.norm(a64 - b64) / max(np.linalg.norm(b64), 1e-30)))
            wmax = max(wmax, float(np.abs(a64 - b64).max() / max(np.abs(b64).max(), 1e-30)))
        wtol = a.tol if a.weights_tol is None else a.weights_tol
        ok = worst <= a.tol and werr <= wtol
        bad += not ok
        print(f"{run}: {len(l)} steps, max loss rel diff {worst:.2e}, "
              f"max weight rel L2 diff {werr:.2e} (max-abs {wmax:.1e}) {'OK' if ok else 'FAIL'}")
    print(f"compare: {len(a.runs) - 1} runs against {a.runs[0]}, {bad} failed")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())

"""molt analyze against numpy on the same checkpoint:
    analyze_oracle.py CKPT.h5 ANALYZE.json
Per plugin site: diversity = mean over expert pairs of the mean principal
angle between span(B_e) (QR, then the SVD of Q1'Q2; angles from arccos, and
from arcsin of the residual for small ones), effective rank = exp(entropy of
sigma/sum sigma) of B_e A_e, averaged over experts; load sums to 1. Within
1e-6 (angles, radians) and 1e-6 relative (ranks). Exits 1 on a violation."""
import json
import math
import sys

import h5py
import numpy as np


def angles(B1, B2):
    Q1, _ = np.linalg.qr(B1)
    Q2, _ = np.linalg.qr(B2)
    c = np.clip(np.linalg.svd(Q1.T @ Q2, compute_uv=False), -1, 1)
    # small angles are accurate from the sine: |(I - Q1 Q1') Q2|
    s = np.linalg.svd(Q2 - Q1 @ (Q1.T @ Q2), compute_uv=False)
    s = np.sort(np.clip(s, 0, 1))[: len(c)]
    a = np.arccos(np.sort(c)[::-1])
    return np.where(a < 0.5, np.arcsin(s), a)


def erank(M):
    sv = np.linalg.svd(M, compute_uv=False)
    q = sv / sv.sum()
    q = q[q > 0]
    return math.exp(-(q * np.log(q)).sum())


def main(ckpt, path):
    out = json.load(open(path))
    bad = 0
    with h5py.File(ckpt, "r") as f:
        for site in out["sites"]:
            grp = f["adapters/" + site["site"]]
            N = site["experts"]
            Bs = [np.array(grp["expert_%03d/lora_B" % e], dtype=np.float64) for e in range(N)]
            As = [np.array(grp["expert_%03d/lora_A" % e], dtype=np.float64) for e in range(N)]
            pairs = [angles(Bs[a], Bs[b]).mean() for a in range(N) for b in range(a + 1, N)]
            div = float(np.mean(pairs))
            er = float(np.mean([erank(B @ A) for A, B in zip(As, Bs)]))
            e_div = abs(div - site["diversity"])
            e_er = abs(er - site["effective_rank"]) / er
            e_load = abs(sum(site["load"]) - 1)
            ok = e_div <= 1e-6 and e_er <= 1e-6 and e_load <= 1e-6
            bad += not ok
            print(f"analyze_oracle: {site['site']:32s} diversity {site['diversity']:.6f} (numpy "
                  f"{div:.6f}, err {e_div:.1e}) erank {site['effective_rank']:.4f} (err {e_er:.1e})"
                  f"{'' if ok else '  FAIL'}")
    print("analyze_oracle:", "FAILED" if bad else "ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

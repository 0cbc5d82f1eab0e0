"""FactorLLM's PA and balance router losses (DESIGN §4 `pa`) in PyTorch
float64 autograd, against molt_pa_loss's values and dL/dz (tests/ref/pa_dump):
    pa_oracle.py DUMP.h5
L_PA = pa_coef * (1/tokens) sum_t KL(clip(softmax(z_t)) || clip(softmax(m_t)))
with m_t k-hot on the k lowest errors (ties: lower index), clip to
[1e-7, 1 - 1e-7] by torch.clamp (no gradient where clipped);
L_B = bal_coef * mean over tokens (normaliser `tokens`) and experts of
topk_mask * softmax(z). Tolerance 1e-4 relative (values) and 1e-4 of the
largest |dz| (gradients). Prints the worst errors; exits 1 on a violation."""
import sys

import h5py
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def label(ell, k):
    T, N = ell.shape
    m = torch.zeros(T, N)
    for t in range(T):
        order = sorted(range(N), key=lambda i: (ell[t, i], i))  # ties: lower index
        m[t, order[:k]] = 1.0
    return m


def main(path):
    bad = 0
    with h5py.File(path, "r") as f:
        for name, g in f.items():
            k, tokens = int(g.attrs["k"]), float(g.attrs["tokens"])
            pa_coef, bal_coef = float(g.attrs["pa_coef"]), float(g.attrs["bal_coef"])
            z = torch.tensor(np.array(g["z"], dtype=np.float64), requires_grad=True)
            ell = np.array(g["ell"], dtype=np.float64)
            sel = torch.tensor(np.array(g["sel"], dtype=np.float64))
            T, N = z.shape
            P = torch.clamp(torch.softmax(z, -1), 1e-7, 1 - 1e-7)
            Q = torch.clamp(torch.softmax(label(ell, min(max(k, 1), N)), -1), 1e-7, 1 - 1e-7)
            pa = pa_coef * (P * (P.log() - Q.log())).sum() / tokens
            bal = bal_coef * (sel * torch.softmax(z, -1)).sum() / (tokens * N)
            (pa + bal).backward()
            dz = np.array(g["dz"], dtype=np.float64) - np.float64(np.float32(1e-4))  # accumulated onto 1e-4
            ref = z.grad.numpy()
            e_pa = abs(g.attrs["pa"] - pa.item()) / max(abs(pa.item()), 1e-30)
            e_b = abs(g.attrs["balance"] - bal.item()) / max(abs(bal.item()), 1e-30)
            e_g = np.abs(dz - ref).max() / max(np.abs(ref).max(), 1e-30)
            clipped = int(((torch.softmax(z, -1) < 1e-7) | (torch.softmax(z, -1) > 1 - 1e-7)).sum())
            ok = e_pa <= 1e-4 and e_b <= 1e-4 and e_g <= 1e-4
            bad += not ok
            print(f"pa_oracle: {name:8s} T={T:3d} N={N} k={k}: L_PA {pa.item():.6e} rel err {e_pa:.1e}, "
                  f"balance rel err {e_b:.1e}, dz err {e_g:.1e} of max, {clipped} clipped entries"
                  f"{'' if ok else '  FAIL'}")
            if name == "extreme" and clipped == 0:
                print("pa_oracle: the extreme case clips nothing: the clipping is untested")
                bad += 1
    print("pa_oracle:", "FAILED" if bad else "ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

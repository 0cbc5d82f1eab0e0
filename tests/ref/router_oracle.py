#!/usr/bin/python3
"""router_oracle.py — the PyTorch oracle for molt's routers and aux losses.

usage: router_oracle.py DUMP.h5 [--tol 1e-4]

Reads a dump written by tests/ref/router_dump.c (layout in its header
comment: one group /case_NNN per router x parameters x input set) and, per
case, recomputes in float64:

  p          softmax(z) with torch
  sel, soft  the selection, recomputed here from the DUMPED fp32 p (the
             values molt decided on), exactly by DESIGN §3 and the rules in
             include/molt/router.h: sorts are stable (lower index first on
             ties), cumulative sums are sequential float64 sums of the fp32 p,
             entropies use the same libm pow/log on the same values. Exact
             equality is required (also for nsel and capacity).
  ent        H_q(p_t), q = entropy_q, p~ = p + 1e-5
  w          a differentiable function of z given the selection:
             topk p*sel / sum(p*sel); topp, dynmole, switch, soft,
             expert_choice p*sel; factor (N/k)*sel (constant)
  stats      count, psum, wsum, ent_sum, zsum, tokens, selections
  aux        over the case's tokens (the global batch; molt computed them
             from two micro-batches [0,split), [split,T)):
               balance = coef*N*sum_i f_i P_i, f_i = count_i/(T k) DETACHED,
                 k = clamp(top_k,1,N) (topk, factor, expert_choice), 1
                 (switch), selections/T (topp, dynmole, soft)
               dynmole = ent_coef*mean_t H_q(p_t)
                         + bal_coef*N*sum_i f_i P_i, f_i = mean_t w_ti DETACHED
               zloss   = coef*mean_t logsumexp(z_t)^2
  gradients  with autograd: dz_w = d(sum dw*w)/dz, dp_aux = d(balance +
             dynmole)/dp, dz_aux[_<loss>] = d(aux)/dz, dz = d(sum dw*w+aux)/dz

Comparison: err = max|a - b| / max(max|b|, floor), b = oracle, OK iff err <=
tol. floor = 1e-30, except for a gradient wrt z, whose floor is the largest
oracle gradient wrt p of the same objective: a softmax backward of an (almost)
constant dp cancels to ~0 in float64 but leaves fp32 residue of order eps*|dp|
in molt (the soft router's balance loss is constant, so its exact gradient is
0). sel/soft/count/nsel/capacity/tokens/selections must be equal.
The dump must also exercise every edge case in COVERAGE (ties, a cumulative
sum exactly on top_p, partial dynmole fallback, an unused expert, a token
with no expert, N = 1, k >= N, q = 1 and 2, H above a threshold >= 1,
top_p = 1); a
missing one is a failure.

Prints one line per case ("OK"/"FAIL" with the worst tensor), then
"router_oracle: N cases, K failed". Exit 0 iff nothing failed, 1 on a
mismatch, 2 on a malformed dump (missing dataset/attribute, bad shape).
Uses only torch, numpy, h5py (Debian: python3-torch python3-h5py).
"""
import argparse
import math
import sys

import h5py
import numpy as np
import torch

KINDS = ["topk", "topp", "dynmole", "switch", "soft", "expert_choice", "factor"]
SHIFT = 1e-5
TENSORS = ["z", "p", "w", "sel", "dw", "dz_w", "dp_aux", "dz_aux", "dz_aux_balance",
           "dz_aux_dynmole", "dz_aux_zloss", "dz"]
ATTRS = ["name", "router", "kind", "N", "T", "top_k", "keep_top_k", "capacity", "split", "nsel",
         "top_p", "entropy_threshold", "entropy_q", "capacity_factor", "balance_coef",
         "dynmole_entropy_coef", "dynmole_balance_coef", "zloss_coef", "aux_balance",
         "aux_dynmole", "aux_zloss", "stat_ent_sum", "stat_zsum", "stat_tokens",
         "stat_selections"]


class Malformed(Exception):
    pass


def entropy_row(p, q):
    """H_q of one fp32 row as molt computes it (sequential sum, libm)."""
    n = len(p)
    if n <= 1:
        return 0.0
    s = 0.0
    if q == 1.0:
        for x in p:
            pt = float(x) + SHIFT
            s -= pt * math.log(pt)
        return s / math.log(n)
    for x in p:
        s += math.pow(float(x) + SHIFT, q)
    return (1.0 - s) / (1.0 - math.pow(n, 1.0 - q))


def entropy_torch(p, q):
    """H_q(p_t) for every row of a float64 tensor, differentiable."""
    n = p.shape[1]
    if n <= 1:
        return (p * 0).sum(1)
    pt = p + SHIFT
    if q == 1.0:
        return -(pt * torch.log(pt)).sum(1) / math.log(n)
    return (1.0 - (pt ** q).sum(1)) / (1.0 - n ** (1.0 - q))


def k_of(top_k, n):
    return min(max(top_k, 1), n)


def capacity(cf, T, k, n):
    x = cf * T * k / n
    c = math.ceil(x * (1.0 - 1e-6))
    return 1 if not c >= 1 else min(c, T)


def select(a, p):
    """sel [T,N] (0/1) and soft [T] from the dumped fp32 p (as float64)."""
    T, n = p.shape
    kind = KINDS[a["kind"]]
    sel = np.zeros((T, n))
    soft = np.zeros(T)
    if kind == "expert_choice":
        C = capacity(a["capacity_factor"], T, k_of(a["top_k"], n), n)
        for e in range(n):
            order = np.argsort(-p[:, e], kind="stable")
            sel[order[:C], e] = 1
        return sel, soft
    for t in range(T):
        order = np.argsort(-p[t], kind="stable")
        c = np.cumsum(p[t][order])  # sequential float64 sums
        if kind in ("topk", "factor"):
            m = k_of(a["top_k"], n)
        elif kind == "switch":
            m = 1
        elif kind == "soft":
            m = n
        elif kind == "topp":
            if a["top_p"] >= 1.0:
                m = n
            else:
                hit = np.nonzero(c >= a["top_p"])[0]
                m = int(hit[0]) + 1 if len(hit) else n
        else:  # dynmole
            thr = a["entropy_threshold"]
            if thr < 1.0 and entropy_row(p[t], a["entropy_q"]) > thr:
                soft[t] = 1
                m = n
            else:
                if a["top_p"] >= 1.0:
                    m = n
                else:
                    m = 0
                    while m < n and c[m] <= a["top_p"]:
                        m += 1
                m = max(m, min(max(a["keep_top_k"], 0), n))
        sel[t, order[:m]] = 1
    return sel, soft


def weights(kind, p, sel, top_k):
    n = p.shape[1]
    if kind == "topk":
        ps = p * sel
        return ps / ps.sum(1, keepdim=True)
    if kind == "factor":
        return sel * (n / k_of(top_k, n))
    return p * sel


def rel_err(a, b, floor=1e-30):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def grad(out, wrt):
    if not out.requires_grad:  # factor: w does not depend on z
        return torch.zeros_like(wrt)
    g, = torch.autograd.grad(out, wrt, retain_graph=True, allow_unused=True)
    return torch.zeros_like(wrt) if g is None else g


# Edge cases the dump must exercise (DESIGN §3 boundaries); each is found by
# looking at the data, so a changed dump cannot silently drop one.
COVERAGE = {
    "tie inside a token": lambda a, p, sel, soft: any(len(set(r)) < len(r) for r in p),
    "cumsum exactly on top_p": lambda a, p, sel, soft: a["kind"] in (1, 2) and any(
        a["top_p"] in np.cumsum(np.sort(r)[::-1]) for r in p),
    "dynmole soft on some tokens only": lambda a, p, sel, soft: 0 < soft.sum() < len(soft),
    "an expert no token selects": lambda a, p, sel, soft: (sel.sum(0) == 0).any(),
    "a token with no expert": lambda a, p, sel, soft: (sel.sum(1) == 0).any(),
    "N = 1": lambda a, p, sel, soft: a["N"] == 1,
    "k >= N": lambda a, p, sel, soft: a["kind"] in (0, 6) and a["top_k"] >= a["N"] > 1,
    "q = 1 (Shannon)": lambda a, p, sel, soft: a["kind"] == 2 and a["entropy_q"] == 1.0,
    "q = 2": lambda a, p, sel, soft: a["kind"] == 2 and a["entropy_q"] == 2.0,
    "H > entropy_threshold >= 1 (no fallback)": lambda a, p, sel, soft: a["kind"] == 2 and a[
        "entropy_threshold"] >= 1.0 and any(entropy_row(r, a["entropy_q"]) > a[
            "entropy_threshold"] for r in p),
    "top_p = 1": lambda a, p, sel, soft: a["kind"] == 1 and a["top_p"] == 1.0,
}


def check_case(grp, tol, covered):
    """Returns (failures, worst_name, worst_err); adds to `covered`."""
    a = {}
    for k in ATTRS:
        if k not in grp.attrs:
            raise Malformed(f"{grp.name}: attribute {k} missing")
        v = grp.attrs[k]
        a[k] = v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v
    T, n = a["T"], a["N"]
    d = {}
    for k in TENSORS + ["ent", "soft", "stat_count", "stat_psum", "stat_wsum"]:
        if k not in grp:
            raise Malformed(f"{grp.name}: dataset {k} missing")
        d[k] = np.array(grp[k], dtype=np.float64)
        want = (n,) if k.startswith("stat_") else (T,) if k in ("ent", "soft") else (T, n)
        if d[k].shape != want:
            raise Malformed(f"{grp.name}/{k}: shape {d[k].shape}, expected {want}")
    kind = KINDS[a["kind"]]
    if kind != a["router"]:
        raise Malformed(f"{grp.name}: kind {a['kind']} but router {a['router']}")

    fails = []
    errs = {}

    def cmp(name, mine, theirs, floor=1e-30):
        e = rel_err(mine, theirs, floor)
        errs[name] = e
        if not e <= tol:
            fails.append(f"{name} err {e:.3g}")

    def exact(name, mine, theirs):
        if not np.array_equal(np.asarray(mine, dtype=np.float64),
                              np.asarray(theirs, dtype=np.float64)):
            fails.append(f"{name} differs")

    # selection from molt's own fp32 p
    sel_np, soft_np = select(a, d["p"])
    for what, test in COVERAGE.items():
        if test(a, d["p"], sel_np, soft_np):
            covered.add(what)
    exact("sel", d["sel"], sel_np)
    exact("soft", d["soft"], soft_np)
    exact("nsel", a["nsel"], sel_np.sum())
    exact("capacity", a["capacity"], capacity(a["capacity_factor"], T, k_of(a["top_k"], n), n))

    z = torch.tensor(d["z"], dtype=torch.float64, requires_grad=True)
    p = torch.softmax(z, 1)
    sel = torch.tensor(sel_np)
    w = weights(kind, p, sel, a["top_k"])
    dw = torch.tensor(d["dw"])
    cmp("p", d["p"], p.detach())
    cmp("w", d["w"], w.detach())
    H = entropy_torch(p, a["entropy_q"])
    cmp("ent", d["ent"], H.detach())

    # statistics of the global batch (= this case's tokens)
    lse = torch.logsumexp(z, 1)
    exact("stat_count", d["stat_count"], sel_np.sum(0))
    cmp("stat_psum", d["stat_psum"], p.detach().sum(0))
    cmp("stat_wsum", d["stat_wsum"], w.detach().sum(0))
    cmp("stat_ent_sum", a["stat_ent_sum"], H.detach().sum())
    cmp("stat_zsum", a["stat_zsum"], (lse.detach() ** 2).sum())
    exact("stat_tokens", a["stat_tokens"], T)
    exact("stat_selections", a["stat_selections"], sel_np.sum())

    # auxiliary losses, constants detached as documented
    if kind in ("topk", "factor", "expert_choice"):
        k = k_of(a["top_k"], n)
    elif kind == "switch":
        k = 1
    else:
        k = sel_np.sum() / T
    f_bal = torch.tensor(sel_np.sum(0) / (T * k) if k > 0 else np.zeros(n))
    f_dyn = w.detach().sum(0) / T
    P = p.mean(0)
    L_bal = a["balance_coef"] * n * (f_bal * P).sum()
    L_dyn = (a["dynmole_entropy_coef"] * H.mean()
             + a["dynmole_balance_coef"] * n * (f_dyn * P).sum())
    L_z = a["zloss_coef"] * (lse ** 2).mean()
    L_w = (dw * w).sum()
    cmp("aux_balance", a["aux_balance"], L_bal.detach())
    cmp("aux_dynmole", a["aux_dynmole"], L_dyn.detach())
    cmp("aux_zloss", a["aux_zloss"], L_z.detach())

    def zgrad(name, L, Lp):
        """compare d L/dz, the floor being max |d Lp/dp| (Lp: L's p-part)."""
        gp = grad(Lp, p) if Lp is not None else torch.zeros(1)
        floor = max(float(gp.abs().max()), 1e-30)
        cmp(name, d[name], grad(L, z), floor)

    zgrad("dz_w", L_w, L_w)
    cmp("dp_aux", d["dp_aux"], grad(L_bal + L_dyn, p))
    zgrad("dz_aux", L_bal + L_dyn + L_z, L_bal + L_dyn)
    zgrad("dz_aux_balance", L_bal, L_bal)
    zgrad("dz_aux_dynmole", L_dyn, L_dyn)
    zgrad("dz_aux_zloss", L_z, None)
    zgrad("dz", L_w + L_bal + L_dyn + L_z, L_w + L_bal + L_dyn)
    worst = max(errs, key=errs.get)
    return fails, worst, errs[worst]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    try:
        f = h5py.File(args.dump, "r")
    except OSError as e:
        print(f"router_oracle: cannot open {args.dump}: {e}")
        return 2
    with f:
        names = sorted(k for k in f.keys() if k.startswith("case_"))
        if not names:
            print(f"router_oracle: {args.dump} holds no cases")
            return 2
        if "ncases" in f.attrs and int(f.attrs["ncases"]) != len(names):
            print(f"router_oracle: ncases {int(f.attrs['ncases'])} but {len(names)} groups")
            return 2
        failed = 0
        covered = set()
        for nm in names:
            try:
                fails, worst, err = check_case(f[nm], args.tol, covered)
            except Malformed as e:
                print(f"router_oracle: malformed dump: {e}")
                return 2
            label = f[nm].attrs["name"]
            label = label.decode() if isinstance(label, bytes) else str(label)
            if fails:
                failed += 1
                print(f"FAIL {nm} {label:28s} " + "; ".join(fails))
            else:
                print(f"OK   {nm} {label:28s} worst {worst} {err:.2e}")
        missing = [c for c in COVERAGE if c not in covered]
        print("coverage: " + ", ".join(c for c in COVERAGE if c in covered))
        if missing:
            print("FAIL coverage: the dump exercises no case of: " + ", ".join(missing))
        print(f"router_oracle: {len(names)} cases compared, {failed} failed (tol {args.tol:g})"
              + (f", {len(missing)} edge cases missing" if missing else ""))
        return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())

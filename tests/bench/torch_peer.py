#!/usr/bin/python3
"""torch_peer.py — the PyTorch peer of launch/bench (DESIGN §12).

usage: torch_peer.py CONFIG [--set section.key=value ...] [--threads T]
                     [--warmup W] [--steps N]

Builds the model CONFIG describes (the same INI file and --set overrides
launch/bench gives `molt train`) with plain nn.Module code in float32:

  tok_emb -> L x [x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x))] -> RMSNorm -> lm_head

causal grouped-query attention (full T x T scores, masked, softmax), HF
rotate_half RoPE, no biases, RMSNorm eps from the config, LoRA
y = W x + (alpha/r) B A dropout(x) on lora.targets (nn.Dropout(lora.dropout)
on the projection input, only when lora.dropout > 0). mode=full trains every
weight (and any LoRA adapters); mode=peft freezes the base (requires_grad
False) and trains only LoRA A/B and routers. AdamW over the trainable
parameters (betas, eps, weight decay from the config), global gradient-norm
clipping to train.grad_clip.

Mixture of LoRA experts, from the config's [moe] section (DESIGN §2-§4; the
same keys and defaults as molt): placement plugin (DynMoLE, MoLA) or
fused_mlp (MixLoRA); routers topk, topp, dynmole, soft; aux losses balance,
dynmole, zloss (summed over sites, or moe.aux_reduce=mean). Experts run
sparsely the way MoE-PEFT does it: per expert, index_select the tokens routed
to it, run the expert, index_add_ the weighted outputs back.
  plugin     per targeted projection: router W_g [N,in] (Kaiming-uniform,
             bound 1/sqrt(in)) on the projection input x;
             y = W x + sum_e w_e (alpha/r) B_e A_e dropout(x), one dropout
             mask per projection input shared by its experts; W x once.
  fused_mlp  per FFN: router W_g [N,d] (N(0, 0.02)) on the FFN input;
             y = sum_e w_e down_e(silu(gate_e x) * up_e x), each projection
             W + (alpha/r) B_e A_e, the frozen W computed per expert (no
             dropout inside the experts: molt's fused experts apply none);
             lora.targets (attention) get ordinary shared LoRA.
  p = softmax(x W_g^T) in fp32; selection constant (no gradient through it).
  topk       k = moe.top_k largest p, w = p renormalised over the kept set
  topp       sorted prefix with sum >= top_p (crossing kept), w = p
  dynmole    sorted p, keep j while cumsum c_j <= top_p, at least keep_top_k;
             all N when the normalised Tsallis entropy of p + 1e-5 (q =
             entropy_q) exceeds entropy_threshold; w = p * mask
  soft       all experts, w = p
  balance    coef * N * sum_i f_i P_i, f_i = count_i / (T k) (k = top_k for
             topk, else mean experts per token), P_i = mean p_i
  dynmole    dynmole_coef * mean H_q + dynmole_balance_coef * N sum f_i P_i,
             f_i = mean masked weight w_i (detached)
  zloss      coef * mean logsumexp(z)^2
With a [moe] placement the whole model is initialised like molt's random init
(every base weight and the embedding N(0, 0.02), LoRA A Kaiming-uniform, B
zero), so that router logits, and hence the number of experts each token
selects, start from the same distribution on both sides. The JSON line then
also holds "experts_per_token": (token, expert) selections per token, mean
over the MoE sites and the timed steps (molt logs the same figure per site in
metrics.jsonl), and "aux": the last step's auxiliary loss.

Trains on random token ids (< 259, like the built-in tasks) of shape
[train.batch_size, train.seq_len], every position a target. After W untimed
warm-up steps, times N full steps (forward, backward, clip, optimizer) one by
one and prints ONE JSON line: {"tok_s": B*T / fastest step time,
"tok_s_median": B*T / median step time, "tok_s_mean": N*B*T / total time,
"step_s": [N step times], "threads": T, "trainable": ..., "loss": last loss}
(the loss without the auxiliary losses).
The fastest step (best of N, like timeit) is the headline figure because the
machines are shared: contention from other jobs only ever slows a step.

launch/bench runs it with the same threading environment as molt
(OMP_WAIT_POLICY=PASSIVE, OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=T): Debian's
torch calls the same pthread OpenBLAS from spinning OpenMP threads otherwise,
which makes it several times slower and the comparison unfair to torch.

Uses only torch (Debian's python3-torch 1.13, CPU).
"""
import argparse
import configparser
import json
import math
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PROJS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def die(msg):
    print("torch_peer: " + msg, file=sys.stderr)
    sys.exit(2)


class Cfg:
    def __init__(self, path, sets):
        cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                       strict=False)
        try:
            with open(path) as f:
                cp.read_file(f)
        except (OSError, configparser.Error) as e:
            die("cannot read config %s: %s" % (path, e))
        for s in sets:
            if "=" not in s or "." not in s.split("=", 1)[0]:
                die("bad --set %r (want section.key=value)" % s)
            k, v = s.split("=", 1)
            sec, key = k.split(".", 1)
            if not cp.has_section(sec):
                cp.add_section(sec)
            cp.set(sec, key, v)
        self.cp = cp

    def get(self, sec, key, default):
        if not self.cp.has_option(sec, key):
            return default
        return self.cp.get(sec, key).strip().strip('"').strip("'").strip()

    def int(self, sec, key, default):
        return int(self.get(sec, key, default))

    def float(self, sec, key, default):
        return float(self.get(sec, key, default))

    def bool(self, sec, key, default):
        return str(self.get(sec, key, default)).lower() in ("true", "1", "yes", "on")


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Proj(nn.Module):
    """Bias-free linear, weight [out, in], with an optional LoRA adapter."""

    def __init__(self, din, dout, r=0, alpha=0.0, dropout=0.0, std=None):
        super().__init__()
        self.weight = nn.Parameter(base_init(dout, din, std))
        self.r = r
        if r > 0:
            self.lora_A = nn.Parameter((torch.rand(r, din) * 2 - 1) / math.sqrt(din))
            self.lora_B = nn.Parameter(torch.zeros(dout, r))
            self.scale = alpha / r
            self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r > 0:
            xd = self.drop(x) if self.drop is not None else x
            y = y + self.scale * F.linear(F.linear(xd, self.lora_A), self.lora_B)
        return y


def base_init(dout, din, std):
    """Frozen/base weight: randn/sqrt(in) (dense cases), or N(0, std) like
    molt's random init (MoE cases)."""
    if std is None:
        return torch.randn(dout, din) / math.sqrt(din)
    return torch.randn(dout, din) * std


def lora_pair(din, dout, r):
    """One expert's (A [r,in] Kaiming-uniform, B [out,r] zeros)."""
    return (nn.Parameter((torch.rand(r, din) * 2 - 1) / math.sqrt(din)),
            nn.Parameter(torch.zeros(dout, r)))


class Router:
    """Routing and aux losses (DESIGN §3-§4) shared by the MoE modules."""

    def __init__(self, m):
        self.m = m  # dict of [moe] settings

    def route(self, z):
        """z [M,N] -> (p [M,N], w [M,N] combine weights, sel [M,N] bool,
        entropy [M] or None)."""
        m, N = self.m, z.shape[1]
        p = z.float().softmax(dim=-1)
        kind = m["router"]
        H = None
        if kind == "dynmole" or "dynmole" in m["aux"]:
            H = tsallis(p, m["entropy_q"])
        if kind == "topk":
            k = min(max(m["top_k"], 1), N)
            topv, topi = p.topk(k, dim=-1)
            sel = torch.zeros_like(p, dtype=torch.bool).scatter_(1, topi, True)
            w = torch.zeros_like(p).scatter(1, topi, topv / topv.sum(-1, keepdim=True))
            return p, w, sel, H
        if kind == "soft":
            return p, p, torch.ones_like(p, dtype=torch.bool), H
        with torch.no_grad():
            ps, order = torch.sort(p.detach(), dim=-1, descending=True, stable=True)
            c = ps.double().cumsum(-1)
            if m["top_p"] >= 1:
                ks = torch.ones_like(ps, dtype=torch.bool)
            elif kind == "topp":  # smallest prefix with sum >= top_p (crossing kept)
                ks = torch.cat((torch.ones_like(c[:, :1], dtype=torch.bool),
                                c[:, :-1] < m["top_p"]), dim=1)
            else:  # dynmole: c_j <= top_p (crossing not kept), >= keep_top_k
                ks = c <= m["top_p"]
                ks[:, :min(max(m["keep_top_k"], 0), N)] = True
            sel = torch.zeros_like(ks).scatter_(1, order, ks)
            if kind == "dynmole" and m["entropy_threshold"] < 1:
                sel[H.detach() > m["entropy_threshold"]] = True
        return p, p * sel, sel, H

    def aux(self, z, p, w, sel, H, n_sites):
        m, (M, N) = self.m, p.shape
        scale = 1.0 / n_sites if m["aux_reduce"] == "mean" else 1.0
        loss = z.new_zeros(())
        if "balance" in m["aux"]:
            k = m["top_k"] if m["router"] == "topk" else sel.sum().item() / M
            f = sel.float().sum(0) / (M * k)
            loss = loss + m["balance_coef"] * N * (f * p.mean(0)).sum()
        if "dynmole" in m["aux"]:
            f = w.detach().mean(0)
            loss = loss + m["dynmole_coef"] * H.mean() + \
                m["dynmole_balance_coef"] * N * (f * p.mean(0)).sum()
        if "zloss" in m["aux"]:
            loss = loss + m["zloss_coef"] * torch.logsumexp(z, dim=-1).pow(2).mean()
        return scale * loss


def tsallis(p, q):
    """Normalised Tsallis entropy of p + 1e-5 per row (q = 1: Shannon)."""
    N = p.shape[-1]
    if N == 1:
        return p.new_zeros(p.shape[:-1])
    pt = p + 1e-5
    if abs(q - 1.0) < 1e-12:
        return -(pt * pt.log()).sum(-1) / math.log(N)
    return (1.0 - pt.pow(q).sum(-1)) / (1.0 - N ** (1.0 - q))


class MoEState:
    """Per-forward collection of aux losses and selection counts."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.aux = []
        self.ept = []  # experts per token, per site


class PluginProj(nn.Module):
    """Frozen W plus N routed LoRA experts on one projection (plugin)."""

    def __init__(self, din, dout, s, N, state):
        super().__init__()
        self.weight = nn.Parameter(base_init(dout, din, s["std"]))
        bound = 1.0 / math.sqrt(din)
        self.router = nn.Parameter((torch.rand(N, din) * 2 - 1) * bound)
        pairs = [lora_pair(din, dout, s["r"]) for _ in range(N)]
        self.lora_A = nn.ParameterList(a for a, _ in pairs)
        self.lora_B = nn.ParameterList(b for _, b in pairs)
        self.scale = s["alpha"] / s["r"]
        self.drop = nn.Dropout(s["dropout"]) if s["dropout"] > 0 else None
        self.N, self.rt, self.state = N, Router(s["moe"]), state

    def forward(self, x):
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        y = F.linear(x, self.weight)
        z = F.linear(x, self.router)
        p, w, sel, H = self.rt.route(z)
        self.state.aux.append((self.rt, z, p, w, sel, H))
        self.state.ept.append(sel.sum().item() / x.shape[0])
        xd = self.drop(x) if self.drop is not None else x
        out = torch.zeros_like(y)
        for e in range(self.N):
            idx = sel[:, e].nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            xe = xd.index_select(0, idx)
            ye = F.linear(F.linear(xe, self.lora_A[e]), self.lora_B[e])
            we = w.index_select(0, idx)[:, e:e + 1] * self.scale
            out.index_add_(0, idx, ye * we)
        return (y + out).view(*shp[:-1], -1)


class MixFFN(nn.Module):
    """MixLoRA FFN (fused_mlp): experts = frozen SwiGLU FFN + per-expert LoRA
    on gate/up/down; one router over the FFN input."""

    def __init__(self, s, N, state):
        super().__init__()
        d, dff, r = s["d"], s["dff"], s["r"]
        self.gate_proj = nn.Parameter(base_init(dff, d, s["std"]))
        self.up_proj = nn.Parameter(base_init(dff, d, s["std"]))
        self.down_proj = nn.Parameter(base_init(d, dff, s["std"]))
        self.router = nn.Parameter(torch.randn(N, d) * 0.02)
        self.A, self.B = nn.ParameterList(), nn.ParameterList()
        for _ in range(N):  # per expert: gate, up, down
            for din, dout in ((d, dff), (d, dff), (dff, d)):
                a, b = lora_pair(din, dout, r)
                self.A.append(a)
                self.B.append(b)
        self.scale = s["alpha"] / r
        self.N, self.rt, self.state = N, Router(s["moe"]), state

    def adapted(self, x, W, e, i):
        return F.linear(x, W) + self.scale * F.linear(F.linear(x, self.A[3 * e + i]),
                                                      self.B[3 * e + i])

    def forward(self, x):
        shp = x.shape
        x = x.reshape(-1, shp[-1])
        z = F.linear(x, self.router)
        p, w, sel, H = self.rt.route(z)
        self.state.aux.append((self.rt, z, p, w, sel, H))
        self.state.ept.append(sel.sum().item() / x.shape[0])
        out = torch.zeros_like(x)
        for e in range(self.N):
            idx = sel[:, e].nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            xe = x.index_select(0, idx)
            h = F.silu(self.adapted(xe, self.gate_proj, e, 0)) * self.adapted(xe, self.up_proj, e, 1)
            ye = self.adapted(h, self.down_proj, e, 2)
            out.index_add_(0, idx, ye * w.index_select(0, idx)[:, e:e + 1])
        return out.view(shp)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, s, layer, state):
        super().__init__()
        d, hd = s["d"], s["hd"]
        moe = s["moe"]
        N = moe["n_exp"][layer] if moe else 0

        def proj(name, din, dout):
            if moe and moe["placement"] == "plugin" and name in moe["targets"]:
                return PluginProj(din, dout, s, N, state)
            r = s["r"] if name in s["targets"] else 0
            return Proj(din, dout, r, s["alpha"], s["dropout"], s["std"])
        self.H, self.Hkv, self.hd = s["H"], s["Hkv"], hd
        self.attn_norm = RMSNorm(d, s["eps"])
        self.q_proj = proj("q_proj", d, s["H"] * hd)
        self.k_proj = proj("k_proj", d, s["Hkv"] * hd)
        self.v_proj = proj("v_proj", d, s["Hkv"] * hd)
        self.o_proj = proj("o_proj", s["H"] * hd, d)
        self.ffn_norm = RMSNorm(d, s["eps"])
        self.mix = MixFFN(s, N, state) if moe and moe["placement"] == "fused_mlp" else None
        if self.mix is None:
            self.gate_proj = proj("gate_proj", d, s["dff"])
            self.up_proj = proj("up_proj", d, s["dff"])
            self.down_proj = proj("down_proj", s["dff"], d)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = self.H // self.Hkv
        if g > 1:
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, self.H * self.hd)
        x = x + self.o_proj(o)
        h = self.ffn_norm(x)
        if self.mix is not None:
            return x + self.mix(h)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.state = MoEState()
        self.tok_emb = nn.Parameter(torch.randn(s["V"], s["d"]) * 0.02)
        self.blocks = nn.ModuleList(Block(s, l, self.state) for l in range(s["L"]))
        self.norm = RMSNorm(s["d"], s["eps"])
        self.tied = s["tied"]
        if not self.tied:
            self.lm_head = nn.Parameter(base_init(s["V"], s["d"], s["std"]))
        T, hd = s["T"], s["hd"]
        inv = 1.0 / (s["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1),
                             persistent=False)

    def aux_loss(self):
        """Sum of the auxiliary losses of the last forward (0 without MoE)."""
        n = len(self.state.aux)
        if n == 0:
            return None
        return sum(rt.aux(z, p, w, sel, H, n) for rt, z, p, w, sel, H in self.state.aux)

    def forward(self, idx):
        self.state.reset()
        x = F.embedding(idx, self.tok_emb)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        x = self.norm(x)
        return F.linear(x, self.tok_emb if self.tied else self.lm_head)


def parse_moe(c):
    """The [moe] settings (molt's keys and defaults), or None without experts."""
    placement = c.get("moe", "placement", "none")
    if placement == "none":
        return None
    if placement not in ("plugin", "fused_mlp"):
        die("moe.placement %r is not in the peer (plugin, fused_mlp)" % placement)
    router = c.get("moe", "router", "topk")
    if router not in ("topk", "topp", "dynmole", "soft"):
        die("moe.router %r is not in the peer (topk, topp, dynmole, soft)" % router)
    lst = lambda v: [x for x in v.replace(" ", "").split(",") if x and x.lower() != "none"]
    n_exp = []
    for item in lst(c.get("moe", "num_experts", "6")):
        cnt, _, rep = item.partition("x")
        n_exp += [int(cnt)] * (int(rep) if rep else 1)
    targets = lst(c.get("moe", "targets", "gate_proj,up_proj,down_proj"))
    for t in targets:
        if t not in PROJS:
            die("unknown moe target %r" % t)
    aux = lst(c.get("moe", "aux", ""))
    for x in aux:
        if x not in ("balance", "dynmole", "zloss"):
            die("moe.aux %r is not in the peer (balance, dynmole, zloss)" % x)
    top_p = c.float("moe", "top_p", 0.0)
    if top_p == 0:
        top_p = 0.8 if router == "topp" else 0.75
    return dict(placement=placement, router=router, n_exp=n_exp, targets=targets, aux=aux,
                top_k=c.int("moe", "top_k", 2), top_p=top_p,
                keep_top_k=c.int("moe", "keep_top_k", 2),
                entropy_threshold=c.float("moe", "entropy_threshold", 0.9),
                entropy_q=c.float("moe", "entropy_q", 1.1),
                balance_coef=c.float("moe", "balance_coef", 1e-3),
                dynmole_coef=c.float("moe", "dynmole_coef", 0.01),
                dynmole_balance_coef=c.float("moe", "dynmole_balance_coef", 0.001),
                zloss_coef=c.float("moe", "zloss_coef", 1e-3),
                aux_reduce=c.get("moe", "aux_reduce", "sum"))


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of launch/bench (prints one JSON line)")
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="section.key=value")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    if a.threads < 1 or a.warmup < 0 or a.steps < 1:
        die("need --threads >= 1, --warmup >= 0, --steps >= 1")
    c = Cfg(a.config, a.set)
    mode = c.get("model", "mode", "full")
    if mode not in ("full", "peft"):
        die("model.mode must be full or peft, not %r" % mode)
    t = c.get("lora", "targets", "").replace(" ", "")
    targets = [] if t.lower() in ("", "none") else (list(PROJS) if t.lower() == "all" else t.split(","))
    for p in targets:
        if p not in PROJS:
            die("unknown lora target %r" % p)
    moe = parse_moe(c)
    s = dict(V=c.int("model", "vocab_size", 259), d=c.int("model", "d_model", 64),
             L=c.int("model", "n_layers", 2), H=c.int("model", "n_heads", 4),
             Hkv=c.int("model", "n_kv_heads", 4), dff=c.int("model", "d_ff", 256),
             theta=c.float("model", "rope_theta", 10000.0), eps=c.float("model", "norm_eps", 1e-5),
             tied=c.bool("model", "tie_embeddings", "true"), targets=targets,
             r=c.int("lora", "r", 8), alpha=c.float("lora", "alpha", 16.0),
             dropout=c.float("lora", "dropout", 0.0), T=c.int("train", "seq_len", 64),
             moe=moe, std=0.02 if moe else None)
    if s["d"] % s["H"] or s["H"] % s["Hkv"]:
        die("need d_model % n_heads == 0 and n_heads % n_kv_heads == 0")
    if moe:
        if len(moe["n_exp"]) == 1:
            moe["n_exp"] = moe["n_exp"] * s["L"]
        if len(moe["n_exp"]) != s["L"]:
            die("moe.num_experts covers %d layers, model.n_layers is %d"
                % (len(moe["n_exp"]), s["L"]))
    s["hd"] = s["d"] // s["H"]
    B, T = c.int("train", "batch_size", 16), s["T"]
    train_norms = c.bool("lora", "train_norms", "false")

    torch.set_num_threads(a.threads)
    torch.manual_seed(c.int("train", "seed", 1))
    model = Model(s)
    if mode == "peft":
        # adapters (lora_A/lora_B, MixFFN A.i/B.i), routers, norms if asked
        trains = re.compile(r"(\.lora_[AB](\.\d+)?|\.mix\.[AB]\.\d+|\.router)$")
        for n, p in model.named_parameters():
            norm = n.endswith("norm.weight") and train_norms
            p.requires_grad_(bool(trains.search(n)) or norm)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        die("nothing to train (peft needs lora.targets or [moe])")
    opt = torch.optim.AdamW(params, lr=c.float("train", "lr", 1e-3),
                            betas=(c.float("train", "beta1", 0.9), c.float("train", "beta2", 0.95)),
                            eps=c.float("train", "eps", 1e-8),
                            weight_decay=c.float("train", "weight_decay", 0.0))
    clip = c.float("train", "grad_clip", 1.0)
    V = s["V"]
    gen = torch.Generator().manual_seed(1234)
    data = torch.randint(0, min(V, 259), (a.warmup + a.steps, B, T + 1), generator=gen)

    def step(i):
        x, y = data[i, :, :-1], data[i, :, 1:]
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(B * T, V), y.reshape(B * T))
        aux = model.aux_loss()
        total = loss if aux is None else loss + aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return loss.item(), (None if aux is None else aux.item())

    for i in range(a.warmup):
        step(i)
    loss = aux = float("nan")
    times, ept = [], []
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss, aux = step(a.warmup + i)
        times.append(time.perf_counter() - t0)
        if model.state.ept:
            ept.append(sum(model.state.ept) / len(model.state.ept))
    srt = sorted(times)
    med = 0.5 * (srt[(len(srt) - 1) // 2] + srt[len(srt) // 2])
    print(json.dumps({"tok_s": B * T / srt[0], "tok_s_median": B * T / med,
                      "tok_s_mean": a.steps * B * T / sum(times),
                      "step_s": times, "threads": torch.get_num_threads(),
                      "trainable": sum(p.numel() for p in params), "loss": loss,
                      "aux": aux if moe else None,
                      "experts_per_token": (sum(ept) / len(ept)) if ept else None,
                      "experts_per_token_steps": ept or None}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""torch_peer.py — the PyTorch peer of launch/bench (DESIGN §12).

usage: torch_peer.py CONFIG [--set section.key=value ...] [--threads T]
                     [--warmup W] [--steps N]

Builds the model CONFIG describes (the same INI file and --set overrides
launch/bench gives `molt train`) with plain nn.Module code in float32:

  tok_emb -> L x [x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x))] -> RMSNorm -> lm_head

causal grouped-query attention (full T x T scores, masked, softmax), HF
rotate_half RoPE, no biases, RMSNorm eps from the config, LoRA
y = W x + (alpha/r) B A x on lora.targets. mode=full trains every weight (and
any LoRA adapters); mode=peft freezes the base (requires_grad False) and trains
only LoRA A/B. AdamW over the trainable parameters (betas, eps, weight decay
from the config), global gradient-norm clipping to train.grad_clip.

Trains on random token ids (< 259, like the built-in tasks) of shape
[train.batch_size, train.seq_len], every position a target. After W untimed
warm-up steps, times N full steps (forward, backward, clip, optimizer) one by
one and prints ONE JSON line: {"tok_s": B*T / fastest step time,
"tok_s_median": B*T / median step time, "tok_s_mean": N*B*T / total time,
"step_s": [N step times], "threads": T, "trainable": ..., "loss": last loss}.
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

    def __init__(self, din, dout, r=0, alpha=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din) / math.sqrt(din))
        self.r = r
        if r > 0:
            self.lora_A = nn.Parameter((torch.rand(r, din) * 2 - 1) / math.sqrt(din))
            self.lora_B = nn.Parameter(torch.zeros(dout, r))
            self.scale = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r > 0:
            y = y + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)
        return y


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        d, hd = s["d"], s["hd"]

        def proj(name, din, dout):
            r = s["r"] if name in s["targets"] else 0
            return Proj(din, dout, r, s["alpha"])
        self.H, self.Hkv, self.hd = s["H"], s["Hkv"], hd
        self.attn_norm = RMSNorm(d, s["eps"])
        self.q_proj = proj("q_proj", d, s["H"] * hd)
        self.k_proj = proj("k_proj", d, s["Hkv"] * hd)
        self.v_proj = proj("v_proj", d, s["Hkv"] * hd)
        self.o_proj = proj("o_proj", s["H"] * hd, d)
        self.ffn_norm = RMSNorm(d, s["eps"])
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
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.tok_emb = nn.Parameter(torch.randn(s["V"], s["d"]) * 0.02)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s["L"]))
        self.norm = RMSNorm(s["d"], s["eps"])
        self.tied = s["tied"]
        if not self.tied:
            self.lm_head = nn.Parameter(torch.randn(s["V"], s["d"]) / math.sqrt(s["d"]))
        T, hd = s["T"], s["hd"]
        inv = 1.0 / (s["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1),
                             persistent=False)

    def forward(self, idx):
        x = F.embedding(idx, self.tok_emb)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        x = self.norm(x)
        return F.linear(x, self.tok_emb if self.tied else self.lm_head)


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
    s = dict(V=c.int("model", "vocab_size", 259), d=c.int("model", "d_model", 64),
             L=c.int("model", "n_layers", 2), H=c.int("model", "n_heads", 4),
             Hkv=c.int("model", "n_kv_heads", 4), dff=c.int("model", "d_ff", 256),
             theta=c.float("model", "rope_theta", 10000.0), eps=c.float("model", "norm_eps", 1e-5),
             tied=c.bool("model", "tie_embeddings", "true"), targets=targets,
             r=c.int("lora", "r", 8), alpha=c.float("lora", "alpha", 16.0),
             T=c.int("train", "seq_len", 64))
    if s["d"] % s["H"] or s["H"] % s["Hkv"]:
        die("need d_model % n_heads == 0 and n_heads % n_kv_heads == 0")
    s["hd"] = s["d"] // s["H"]
    B, T = c.int("train", "batch_size", 16), s["T"]

    torch.set_num_threads(a.threads)
    torch.manual_seed(c.int("train", "seed", 1))
    model = Model(s)
    if mode == "peft":
        for n, p in model.named_parameters():
            p.requires_grad_(n.endswith("lora_A") or n.endswith("lora_B"))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        die("nothing to train (peft needs lora.targets)")
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
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return loss.item()

    for i in range(a.warmup):
        step(i)
    loss = float("nan")
    times = []
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss = step(a.warmup + i)
        times.append(time.perf_counter() - t0)
    srt = sorted(times)
    med = 0.5 * (srt[(len(srt) - 1) // 2] + srt[len(srt) // 2])
    print(json.dumps({"tok_s": B * T / srt[0], "tok_s_median": B * T / med,
                      "tok_s_mean": a.steps * B * T / sum(times),
                      "step_s": times, "threads": torch.get_num_threads(),
                      "trainable": sum(p.numel() for p in params), "loss": loss}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""make_fake_dump.py — write a synthetic oracle dump, to test torch_llama.py alone.

usage: make_fake_dump.py OUT.h5 [--mode full|peft] [--tied 0|1] [--adam-steps N]
                         [--schedule cosine|linear|constant] [--grad-clip X]
                         [--train-norms 0|1] [--targets LIST|none] [--seed S]
                         [--lr X] [--adam-eps X]
                         [--dtype float32|float64]

It documents the dump format that tests/ref/oracle_dump.c writes (see the
docstring of torch_llama.py) by writing one: random float32 weights (LoRA B
non-zero so lora_A gets a gradient), random inputs and targets with some -1,
and the logits, loss, gradients and post-AdamW weights computed here by an
implementation written independently of the oracle's: nn.Module layers in the
Hugging Face LLaMA style (rotate_half, repeat_kv, F.cross_entropy with
ignore_index) and a hand-written clip + AdamW instead of torch.optim. Compute
is float32 by default, like the C code, so the oracle's tolerance is exercised.

AdamW settings and float32: Adam divides each gradient element by
sqrt(v_hat) + eps, so an element whose gradient is ~float32 noise
(~1e-6 * max|g|) but not << eps gets an update that differs by up to ~lr
between a float32 and a float64 run; measured against max|w| that exceeds
1e-4 with lr 1e-2 / eps 1e-8 (most dumps fail), and occasionally with lr 1e-3
/ eps 1e-6. The defaults here (lr 1e-3, eps 1e-5, grad_clip 1, warmup 1,
3 steps of cosine over 10) passed 32/32 random dumps with worst err 4.3e-5.
Real dumps from oracle_dump.c should use similar settings.

Default sizes (the self-check config): 2 layers, d=64, 4 heads, 2 kv heads,
d_ff=128, vocab 259, B=2, T=16, LoRA on all seven projections, r=4, alpha=8.
"""
import argparse
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PROJS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraLinear(nn.Module):
    def __init__(self, n_in, n_out, r, alpha, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.lora = lora
        if lora:
            self.lora_A = nn.Parameter(torch.empty(r, n_in))
            self.lora_B = nn.Parameter(torch.empty(n_out, r))
            self.scaling = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    b, hkv, t, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, hkv, n_rep, t, hd).reshape(b, hkv * n_rep, t, hd)


class Attention(nn.Module):
    def __init__(self, c, targets):
        super().__init__()
        self.H, self.Hkv, self.hd = c.H, c.Hkv, c.d // c.H
        mk = lambda p, i, o: LoraLinear(i, o, c.r, c.alpha, p in targets)
        self.q_proj = mk("q_proj", c.d, self.H * self.hd)
        self.k_proj = mk("k_proj", c.d, self.Hkv * self.hd)
        self.v_proj = mk("v_proj", c.d, self.Hkv * self.hd)
        self.o_proj = mk("o_proj", self.H * self.hd, c.d)
        self.theta = c.theta

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.Hkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.Hkv, self.hd).transpose(1, 2)
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=x.dtype) / self.hd))
        pos = torch.arange(t, dtype=x.dtype)
        freqs = torch.einsum("i,j->ij", pos, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        k = repeat_kv(k, self.H // self.Hkv)
        v = repeat_kv(v, self.H // self.Hkv)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        mask = torch.full((t, t), float("-inf"), dtype=x.dtype).triu(1)
        w = F.softmax(w + mask, dim=-1)
        o = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(b, t, self.H * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c, targets):
        super().__init__()
        mk = lambda p, i, o: LoraLinear(i, o, c.r, c.alpha, p in targets)
        self.gate_proj = mk("gate_proj", c.d, c.dff)
        self.up_proj = mk("up_proj", c.d, c.dff)
        self.down_proj = mk("down_proj", c.dff, c.d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, targets):
        super().__init__()
        self.self_attn = Attention(c, targets)
        self.mlp = MLP(c, targets)
        self.input_layernorm = RMSNorm(c.d, c.eps)
        self.post_attention_layernorm = RMSNorm(c.d, c.eps)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c, targets):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.V, c.d)
        self.layers = nn.ModuleList([Layer(c, targets) for _ in range(c.L)])
        self.norm = RMSNorm(c.d, c.eps)


class Llama(nn.Module):
    def __init__(self, c, targets):
        super().__init__()
        self.model = Inner(c, targets)
        self.tied = c.tied
        if not c.tied:
            self.lm_head = nn.Linear(c.d, c.V, bias=False)

    def forward(self, ids, targets):
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        logits = F.linear(x, w)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-1, reduction="mean")
        return logits, loss


def hdf5_path(torch_name):
    """nn.Module name -> dump sub-path ('base/<HF name>' or 'adapters/<module>/shared/lora_X')."""
    for ab in ("lora_A", "lora_B"):
        if torch_name.endswith("." + ab):
            return "adapters/%s/shared/%s" % (torch_name[: -len(ab) - 1], ab)
    return "base/" + torch_name


def lr_sched(s, a):
    if s < a.warmup:
        return a.lr * (s + 1) / a.warmup
    p = (s - a.warmup) / max(1, a.steps - a.warmup)
    if a.schedule == "cosine":
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * p))
    if a.schedule == "linear":
        return a.lr - (a.lr - a.min_lr) * p
    return a.lr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--mode", choices=("full", "peft"), default="full")
    ap.add_argument("--tied", type=int, choices=(0, 1), default=0)
    ap.add_argument("--train-norms", type=int, choices=(0, 1), default=1)
    ap.add_argument("--targets", default=",".join(PROJS))
    ap.add_argument("--adam-steps", type=int, default=3)
    ap.add_argument("--schedule", choices=("cosine", "linear", "constant"), default="cosine")
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--adam-eps", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    a = ap.parse_args()

    c = argparse.Namespace(V=259, d=64, L=2, H=4, Hkv=2, dff=128, theta=10000.0, eps=1e-5,
                           tied=bool(a.tied), r=4, alpha=8.0)
    B, T = 2, 16
    a.min_lr, a.warmup, a.steps = a.lr / 10, 1, 10
    a.wd, a.beta1, a.beta2, a.eps = 0.1, 0.9, 0.95, a.adam_eps
    targets = [] if a.targets in ("", "none") else a.targets.split(",")

    config = "\n".join([
        "# resolved configuration (fake dump)",
        "[model]", "mode = %s" % a.mode, "vocab_size = %d" % c.V, "d_model = %d" % c.d,
        "n_layers = %d" % c.L, "n_heads = %d" % c.H, "n_kv_heads = %d" % c.Hkv,
        "d_ff = %d" % c.dff, "max_seq_len = %d" % T, "rope_theta = %g" % c.theta,
        "norm_eps = %g" % c.eps, "tie_embeddings = %s" % ("true" if c.tied else "false"),
        "init_from = ", "",
        "[lora]", "targets = %s" % (",".join(targets) or "none"), "r = %d" % c.r,
        "alpha = %g" % c.alpha, "dropout = 0", "init = kaiming",
        "train_norms = %s" % ("true" if a.train_norms else "false"), "",
        "[train]", "steps = %d" % a.steps, "batch_size = %d" % B, "micro_batch = %d" % B,
        "seq_len = %d" % T, "lr = %r" % a.lr, "min_lr = %r" % a.min_lr, "warmup = %d" % a.warmup,
        "schedule = %s" % a.schedule, "weight_decay = %r" % a.wd, "beta1 = %r" % a.beta1,
        "beta2 = %r" % a.beta2, "eps = %r" % a.eps, "grad_clip = %r" % a.grad_clip,
        "seed = %d" % a.seed, ""])

    torch.manual_seed(a.seed)
    dt = torch.float32 if a.dtype == "float32" else torch.float64
    m = Llama(c, targets)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed" in n:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))  # lora_B too: non-zero
    m = m.to(dt)
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(0, c.V, (B, T), generator=g)
    tgt = torch.randint(0, c.V, (B, T), generator=g)
    tgt[torch.rand(B, T, generator=g) < 0.25] = -1
    tgt[0, 0] = -1

    named = dict(m.named_parameters())
    w0 = {hdf5_path(n): p.detach().float().numpy().copy() for n, p in named.items()}

    def is_trainable(n, p):
        if n.endswith(".lora_A") or n.endswith(".lora_B"):
            return True
        return a.mode == "full" or (bool(a.train_norms) and p.dim() == 1)

    train = {n: p for n, p in named.items() if is_trainable(n, p)}
    for n, p in named.items():
        p.requires_grad_(n in train)

    logits, loss = m(ids, tgt)
    loss.backward()
    out_logits = logits.detach().float().numpy()
    out_loss = np.array([loss.item()], np.float32)
    grads = {hdf5_path(n): p.grad.detach().float().numpy().copy() for n, p in train.items()}

    # hand-written global-norm clip + AdamW, each step on the same batch
    mom = {n: torch.zeros_like(p) for n, p in train.items()}
    vel = {n: torch.zeros_like(p) for n, p in train.items()}
    for t in range(1, a.adam_steps + 1):
        for p in train.values():
            p.grad = None
        _, loss_t = m(ids, tgt)
        loss_t.backward()
        lr = lr_sched(t - 1, a)
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in train.values()))
        coef = a.grad_clip / (norm + 1e-6) if a.grad_clip > 0 else 1.0
        print("make_fake_dump: step %d lr %.6g loss %.6f grad norm %.4f%s"
              % (t, lr, loss_t.item(), norm, " (clipped)" if coef < 1 else ""))
        with torch.no_grad():
            for n, p in train.items():
                gr = p.grad * coef if coef < 1 else p.grad
                wd = a.wd if p.dim() >= 2 else 0.0
                p.mul_(1 - lr * wd)
                mom[n] = a.beta1 * mom[n] + (1 - a.beta1) * gr
                vel[n] = a.beta2 * vel[n] + (1 - a.beta2) * gr * gr
                mh = mom[n] / (1 - a.beta1 ** t)
                vh = vel[n] / (1 - a.beta2 ** t)
                p.sub_(lr * mh / (vh.sqrt() + a.eps))
    after = {hdf5_path(n): p.detach().float().numpy() for n, p in train.items()}

    with h5py.File(a.out, "w") as f:
        f.attrs["config"] = config
        f.attrs["adam_steps"] = np.int32(a.adam_steps)
        for k, v in w0.items():
            f.create_dataset(k, data=v.astype(np.float32))
        f.create_dataset("batch/inputs", data=ids.numpy().astype(np.int32))
        f.create_dataset("batch/targets", data=tgt.numpy().astype(np.int32))
        f.create_dataset("out/logits", data=out_logits)
        f.create_dataset("out/loss", data=out_loss)
        for k, v in grads.items():
            f.create_dataset("grad/" + k, data=v)
        if a.adam_steps > 0:
            for k, v in after.items():
                f.create_dataset("after/" + k, data=v)
    print("make_fake_dump: wrote %s (mode=%s tied=%d, %d weights, %d trainable, loss %.6f)"
          % (a.out, a.mode, a.tied, len(w0), len(grads), float(out_loss[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

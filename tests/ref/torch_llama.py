#!/usr/bin/python3
"""torch_llama.py — the PyTorch oracle for molt's forward, backward and AdamW.

usage: torch_llama.py DUMP.h5 [--tol 1e-4]

Reads a dump written by tests/ref/oracle_dump.c (format below), rebuilds the
LLaMA-style model in float64 from the dumped float32 weights, and checks

  /out/logits, /out/loss          forward at the dumped weights
  /grad/<param path>              d loss / d param for every trainable param
  /after/<param path>             trainables after `adam_steps` AdamW steps

Per tensor: err = max|a - b| / max(max|b|, 1e-30), b = oracle; OK iff
err <= tol. One line per tensor, then "oracle: N tensors compared, K failed".
Exit 0 iff nothing failed, 1 if something failed, 2 on a malformed dump
(missing/unexpected dataset or attribute, bad shape, bad config).

Dump format (HDF5):
  attrs on /: config      resolved INI text (configparser-readable)
              adam_steps  int
  /base/<HF name>         float32 [out, in]: model.embed_tokens.weight [V,d],
                          model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
                          model.layers.{i}.mlp.{gate,up,down}_proj.weight,
                          model.layers.{i}.{input,post_attention}_layernorm.weight,
                          model.norm.weight, lm_head.weight (absent when tied)
  /adapters/<module>/shared/lora_A [r,in], lora_B [out,r]
                          <module> = model.layers.{i}.self_attn.q_proj, ...
                          y = W x + (alpha/r) B (A x)
  /batch/inputs, /batch/targets   int32 [B,T]; target -1 = ignored
  /out/logits [B,T,V], /out/loss [1]
  /grad/base/<name>, /grad/adapters/<module>/shared/lora_{A,B}
  /after/base/<name>, /after/adapters/<module>/shared/lora_{A,B}

Trainable: full mode -> every base weight (+ LoRA A/B when lora.targets is not
"none"); peft -> LoRA A/B, plus every RMSNorm weight when lora.train_norms.

Choices made where the format is silent (documented here on purpose):
  * the set of /grad datasets must equal the trainable set (missing or extra
    is a FAIL line); likewise /after when adam_steps > 0. With adam_steps == 0
    an /after group, if present, is compared as well (must equal the weights).
  * /adapters must hold exactly the modules named by lora.targets (exit 2
    otherwise); with lora.targets = none the group must be absent or empty.
  * a batch in which every target is -1 gives loss 0 (sum / max(count, 1)).
  * /out/loss may be stored as shape [1] or as a scalar; /out/logits as
    [B,T,V] or [B*T,V] (what oracle_dump.c writes; same row-major data).
  * lora.targets also accepts "all" (every projection), as molt's parser does.
  * a shape mismatch between a dumped output/grad/after tensor and the oracle
    is a FAIL line (not exit 2); a mis-shaped weight is exit 2.
  * booleans in the config accept true/false, 1/0, yes/no, on/off.

Uses only torch, numpy, h5py (Debian: python3-torch python3-h5py).
"""
import argparse
import configparser
import math
import sys

import h5py
import numpy as np
import torch

PROJS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
DT = torch.float64


class Malformed(Exception):
    pass


# ---------------------------------------------------------------- config
class Config:
    def __init__(self, text):
        cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                       strict=False)
        try:
            cp.read_string(text)
        except configparser.Error as e:
            raise Malformed("attribute /config: not valid INI text: %s" % e)
        self.cp = cp

    def raw(self, sec, key):
        if not self.cp.has_option(sec, key):
            raise Malformed("attribute /config: missing key [%s] %s" % (sec, key))
        return self.cp.get(sec, key).strip().strip('"').strip("'").strip()

    def str(self, sec, key, allowed=None):
        v = self.raw(sec, key)
        if allowed is not None and v not in allowed:
            raise Malformed("attribute /config: %s.%s = %r (allowed: %s)"
                            % (sec, key, v, "|".join(allowed)))
        return v

    def int(self, sec, key):
        v = self.raw(sec, key)
        try:
            return int(v)
        except ValueError:
            raise Malformed("attribute /config: %s.%s = %r is not an integer" % (sec, key, v))

    def float(self, sec, key):
        v = self.raw(sec, key)
        try:
            return float(v)
        except ValueError:
            raise Malformed("attribute /config: %s.%s = %r is not a number" % (sec, key, v))

    def bool(self, sec, key):
        v = self.raw(sec, key).lower()
        if v in ("true", "1", "yes", "on"):
            return True
        if v in ("false", "0", "no", "off"):
            return False
        raise Malformed("attribute /config: %s.%s = %r is not a boolean" % (sec, key, v))


def attr_text(f, name):
    if name not in f.attrs:
        raise Malformed("missing root attribute '%s'" % name)
    v = f.attrs[name]
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise Malformed("root attribute '%s' has %d elements, want 1" % (name, v.size))
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise Malformed("root attribute '%s' is not a string" % name)
    return v


def attr_int(f, name):
    if name not in f.attrs:
        raise Malformed("missing root attribute '%s'" % name)
    v = np.asarray(f.attrs[name])
    if v.size != 1 or not (np.issubdtype(v.dtype, np.integer)
                           or (np.issubdtype(v.dtype, np.floating) and float(v.reshape(-1)[0]).is_integer())):
        raise Malformed("root attribute '%s' is not a single integer" % name)
    return int(v.reshape(-1)[0])


def read_ds(f, path):
    if path not in f:
        raise Malformed("missing dataset %s" % path)
    obj = f[path]
    if not isinstance(obj, h5py.Dataset):
        raise Malformed("%s is not a dataset" % path)
    return np.asarray(obj[()])


def list_datasets(f, group):
    """Relative paths of every dataset under `group` ('' if absent)."""
    out = []
    if group not in f:
        return out
    g = f[group]
    if isinstance(g, h5py.Dataset):
        raise Malformed("%s should be a group, is a dataset" % group)

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.append(name)
    g.visititems(visit)
    return sorted(out)


# ---------------------------------------------------------------- model
class Spec:
    def __init__(self, cfg):
        self.mode = cfg.str("model", "mode", ("full", "peft"))
        self.V = cfg.int("model", "vocab_size")
        self.d = cfg.int("model", "d_model")
        self.L = cfg.int("model", "n_layers")
        self.H = cfg.int("model", "n_heads")
        self.Hkv = cfg.int("model", "n_kv_heads")
        self.dff = cfg.int("model", "d_ff")
        self.theta = cfg.float("model", "rope_theta")
        self.eps = cfg.float("model", "norm_eps")
        self.tied = cfg.bool("model", "tie_embeddings")
        if min(self.V, self.d, self.L, self.H, self.Hkv, self.dff) <= 0:
            raise Malformed("attribute /config: model sizes must be positive")
        if self.d % self.H or self.H % self.Hkv or (self.d // self.H) % 2:
            raise Malformed("attribute /config: need d_model %% n_heads == 0, "
                            "n_heads %% n_kv_heads == 0 and an even head dim")
        self.hd = self.d // self.H
        t = cfg.str("lora", "targets").replace(" ", "")
        if t.lower() in ("", "none"):
            self.targets = []
        else:
            self.targets = [p for p in t.split(",") if p and p != "none"]
            if "all" in self.targets:
                self.targets = list(PROJS)
            for p in self.targets:
                if p not in PROJS:
                    raise Malformed("attribute /config: lora.targets: unknown projection %r "
                                    "(allowed: %s|none)" % (p, ",".join(PROJS)))
        if self.targets:
            self.r = cfg.int("lora", "r")
            self.alpha = cfg.float("lora", "alpha")
            if self.r <= 0:
                raise Malformed("attribute /config: lora.r must be positive")
            if cfg.cp.has_option("lora", "dropout") and cfg.float("lora", "dropout") != 0.0:
                raise Malformed("attribute /config: lora.dropout must be 0 in an oracle dump")
        self.train_norms = cfg.bool("lora", "train_norms") if self.mode == "peft" else False

    def proj_shape(self, p):
        d, hd, H, Hkv, dff = self.d, self.hd, self.H, self.Hkv, self.dff
        return {"q_proj": (H * hd, d), "k_proj": (Hkv * hd, d), "v_proj": (Hkv * hd, d),
                "o_proj": (d, H * hd), "gate_proj": (dff, d), "up_proj": (dff, d),
                "down_proj": (d, dff)}[p]

    @staticmethod
    def module(i, p):
        return "model.layers.%d.%s.%s" % (i, "self_attn" if p in ATTN else "mlp", p)

    def base_shapes(self):
        s = {"model.embed_tokens.weight": (self.V, self.d)}
        for i in range(self.L):
            for p in PROJS:
                s[self.module(i, p) + ".weight"] = self.proj_shape(p)
            s["model.layers.%d.input_layernorm.weight" % i] = (self.d,)
            s["model.layers.%d.post_attention_layernorm.weight" % i] = (self.d,)
        s["model.norm.weight"] = (self.d,)
        if not self.tied:
            s["lm_head.weight"] = (self.V, self.d)
        return s

    def adapter_shapes(self):
        s = {}
        for i in range(self.L):
            for p in self.targets:
                o, n = self.proj_shape(p)
                m = self.module(i, p)
                s["%s/shared/lora_A" % m] = (self.r, n)
                s["%s/shared/lora_B" % m] = (o, self.r)
        return s


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(spec, P, inputs, targets):
    """P maps parameter path ('base/<name>', 'adapters/<m>/shared/lora_A') to a
    float64 tensor. Returns (logits [B,T,V], loss scalar)."""
    B, T = inputs.shape
    H, Hkv, hd = spec.H, spec.Hkv, spec.hd
    scale = spec.alpha / spec.r if spec.targets else 0.0

    def proj(i, p, h):
        m = spec.module(i, p)
        y = h @ P["base/" + m + ".weight"].t()
        if p in spec.targets:
            a = P["adapters/%s/shared/lora_A" % m]
            b = P["adapters/%s/shared/lora_B" % m]
            y = y + scale * ((h @ a.t()) @ b.t())
        return y

    inv_freq = spec.theta ** (-torch.arange(0, hd, 2, dtype=DT) / hd)
    freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1,1,T,hd]
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    x = P["base/model.embed_tokens.weight"][inputs.long()]  # [B,T,d]
    for i in range(spec.L):
        h = rmsnorm(x, P["base/model.layers.%d.input_layernorm.weight" % i], spec.eps)
        q = proj(i, "q_proj", h).view(B, T, H, hd).transpose(1, 2)
        k = proj(i, "k_proj", h).view(B, T, Hkv, hd).transpose(1, 2)
        v = proj(i, "v_proj", h).view(B, T, Hkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // Hkv
        k = k.repeat_interleave(rep, dim=1)  # head j uses kv head j // rep
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [B,H,T,hd]
        a = a.transpose(1, 2).reshape(B, T, H * hd)
        x = x + proj(i, "o_proj", a)
        h = rmsnorm(x, P["base/model.layers.%d.post_attention_layernorm.weight" % i], spec.eps)
        g = proj(i, "gate_proj", h)
        u = proj(i, "up_proj", h)
        x = x + proj(i, "down_proj", torch.nn.functional.silu(g) * u)
    x = rmsnorm(x, P["base/model.norm.weight"], spec.eps)
    head = P["base/model.embed_tokens.weight"] if spec.tied else P["base/lm_head.weight"]
    logits = x @ head.t()
    tg = targets.long().reshape(-1)
    mask = tg != -1
    n = int(mask.sum())
    lp = torch.log_softmax(logits.reshape(-1, spec.V), dim=-1)
    picked = lp[mask.nonzero().squeeze(1), tg[mask]]
    loss = -picked.sum() / max(n, 1)
    return logits, loss


def lr_at(s, tr):
    if s < tr["warmup"]:
        return tr["lr"] * (s + 1) / tr["warmup"]
    p = (s - tr["warmup"]) / max(1, tr["steps"] - tr["warmup"])
    if tr["schedule"] == "cosine":
        return tr["min_lr"] + 0.5 * (tr["lr"] - tr["min_lr"]) * (1 + math.cos(math.pi * p))
    if tr["schedule"] == "linear":
        return tr["lr"] - (tr["lr"] - tr["min_lr"]) * p
    return tr["lr"]


def read_train(cfg):
    tr = {k: cfg.float("train", k) for k in
          ("lr", "min_lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip")}
    tr["warmup"] = cfg.int("train", "warmup")
    tr["steps"] = cfg.int("train", "steps")
    tr["schedule"] = cfg.str("train", "schedule", ("cosine", "linear", "constant"))
    return tr


def trainable_names(spec, P):
    names = []
    for n in P:
        if n.startswith("adapters/"):
            names.append(n)
        elif spec.mode == "full":
            names.append(n)
        elif spec.train_norms and P[n].dim() == 1:  # every RMSNorm weight
            names.append(n)
    return sorted(names)


def adam_run(spec, P, inputs, targets, tr, steps):
    """AdamW on a copy of the trainables of P; returns {name: tensor}."""
    names = trainable_names(spec, P)
    Q = {n: t.detach().clone() for n, t in P.items()}
    params = {n: Q[n].requires_grad_(True) for n in names}
    decay = [params[n] for n in names if params[n].dim() >= 2]
    nodecay = [params[n] for n in names if params[n].dim() < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": tr["weight_decay"]})
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]),
                            eps=tr["eps"], foreach=False, amsgrad=False)
    for t in range(1, steps + 1):
        lr = lr_at(t - 1, tr)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        _, loss = forward(spec, Q, inputs, targets)
        loss.backward()
        if tr["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_([params[n] for n in names], tr["grad_clip"])
        opt.step()
    return {n: params[n].detach() for n in names}


# ---------------------------------------------------------------- compare
class Report:
    def __init__(self, tol):
        self.tol, self.n, self.failed = tol, 0, 0

    def line(self, name, shape, err, ok, note=""):
        self.n += 1
        self.failed += 0 if ok else 1
        shp = "x".join(str(s) for s in shape) if shape is not None else "-"
        e = "%.3e" % err if err is not None else "-"
        print("%-72s %-14s err=%-10s %s%s" % (name, shp, e, "OK" if ok else "FAIL",
                                               ("  " + note) if note else ""))

    def compare(self, name, got, want):
        want = want.detach().to(DT).numpy() if torch.is_tensor(want) else np.asarray(want, np.float64)
        got = np.asarray(got)
        if got.shape != want.shape:
            self.line(name, got.shape, None, False, "shape %s, oracle %s" % (got.shape, want.shape))
            return
        if not np.issubdtype(got.dtype, np.floating):
            self.line(name, got.shape, None, False, "dtype %s is not floating" % got.dtype)
            return
        got = got.astype(np.float64)
        if got.size == 0:
            self.line(name, got.shape, 0.0, True)
            return
        den = max(float(np.max(np.abs(want))), 1e-30)
        err = float(np.max(np.abs(got - want))) / den
        ok = bool(err <= self.tol)  # NaN -> False
        if not np.all(np.isfinite(got)):
            ok, err = False, float("nan")
        note = ""
        if not ok:
            diff = np.abs(got - want)
            diff[~np.isfinite(diff)] = np.inf
            i = np.unravel_index(int(np.argmax(diff)), got.shape)
            note = "worst at %s: dump %.9g oracle %.9g" % (list(i), got[i], want[i])
        self.line(name, got.shape, err, ok, note)

    def missing(self, name):
        self.line(name, None, None, False, "missing from dump")

    def extra(self, name):
        self.line(name, None, None, False, "unexpected in dump (not a trainable parameter)")


def run(path, tol):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise Malformed("cannot open %s as HDF5: %s" % (path, e))
    with f:
        cfg = Config(attr_text(f, "config"))
        steps = attr_int(f, "adam_steps")
        if steps < 0:
            raise Malformed("root attribute 'adam_steps' = %d is negative" % steps)
        spec = Spec(cfg)
        tr = read_train(cfg) if steps > 0 else None

        # weights
        P = {}
        want = spec.base_shapes()
        have = set(list_datasets(f, "base"))
        for n, shp in want.items():
            a = read_ds(f, "/base/" + n)
            if a.shape != shp:
                raise Malformed("dataset /base/%s has shape %s, config says %s" % (n, a.shape, shp))
            P["base/" + n] = torch.from_numpy(a.astype(np.float64))
        extra = sorted(have - set(want))
        if extra:
            raise Malformed("unexpected dataset /base/%s (%s)" % (extra[0], "tied embeddings"
                            if extra[0] == "lm_head.weight" else "not in the config's model"))
        want = spec.adapter_shapes()
        have = set(list_datasets(f, "adapters"))
        for n, shp in want.items():
            a = read_ds(f, "/adapters/" + n)
            if a.shape != shp:
                raise Malformed("dataset /adapters/%s has shape %s, config says %s" % (n, a.shape, shp))
            P["adapters/" + n] = torch.from_numpy(a.astype(np.float64))
        extra = sorted(have - set(want))
        if extra:
            raise Malformed("unexpected dataset /adapters/%s (not in lora.targets)" % extra[0])

        inputs = read_ds(f, "/batch/inputs")
        targets = read_ds(f, "/batch/targets")
        if inputs.ndim != 2 or targets.shape != inputs.shape:
            raise Malformed("/batch/inputs %s and /batch/targets %s must both be [B,T]"
                            % (inputs.shape, targets.shape))
        if not (np.issubdtype(inputs.dtype, np.integer) and np.issubdtype(targets.dtype, np.integer)):
            raise Malformed("/batch/inputs and /batch/targets must be integer datasets")
        if inputs.size and (inputs.min() < 0 or inputs.max() >= spec.V):
            raise Malformed("/batch/inputs has ids outside [0, %d)" % spec.V)
        bad = (targets != -1) & ((targets < 0) | (targets >= spec.V))
        if bad.any():
            raise Malformed("/batch/targets has ids outside [0, %d) other than -1" % spec.V)
        B, T = inputs.shape
        inputs = torch.from_numpy(inputs.astype(np.int64))
        targets = torch.from_numpy(targets.astype(np.int64))
        d_logits = read_ds(f, "/out/logits")
        if d_logits.shape == (B * T, spec.V):  # molt writes rows of B*T tokens
            d_logits = d_logits.reshape(B, T, spec.V)
        d_loss = read_ds(f, "/out/loss")
        if d_loss.size != 1:
            raise Malformed("/out/loss has shape %s, want [1]" % (d_loss.shape,))

        names = trainable_names(spec, P)
        print("oracle: %s  mode=%s L=%d d=%d H=%d Hkv=%d d_ff=%d V=%d tied=%d lora=%s B=%d T=%d "
              "adam_steps=%d trainables=%d tol=%g"
              % (path, spec.mode, spec.L, spec.d, spec.H, spec.Hkv, spec.dff, spec.V,
                 spec.tied, ",".join(spec.targets) or "none", B, T, steps, len(names), tol))

        rep = Report(tol)
        # forward + backward at the dumped weights
        for n in names:
            P[n].requires_grad_(True)
        logits, loss = forward(spec, P, inputs, targets)
        loss.backward()
        if d_logits.shape == (B * T, spec.V):  # oracle_dump.c writes [B*T, V]
            d_logits = d_logits.reshape(B, T, spec.V)
        rep.compare("out/logits", d_logits, logits)
        rep.compare("out/loss", d_loss.reshape(1), loss.detach().reshape(1))

        have = set(list_datasets(f, "grad"))
        for n in names:
            if n not in have:
                rep.missing("grad/" + n)
            else:
                rep.compare("grad/" + n, read_ds(f, "/grad/" + n), P[n].grad)
        for n in sorted(have - set(names)):
            rep.extra("grad/" + n)

        # AdamW
        have = set(list_datasets(f, "after"))
        if steps > 0 or have:
            after = adam_run(spec, P, inputs, targets, tr, steps) if steps > 0 else \
                {n: P[n].detach() for n in names}
            for n in names:
                if n not in have:
                    rep.missing("after/" + n)
                else:
                    rep.compare("after/" + n, read_ds(f, "/after/" + n), after[n])
            for n in sorted(have - set(names)):
                rep.extra("after/" + n)

    print("oracle: %d tensors compared, %d failed" % (rep.n, rep.failed))
    return 0 if rep.failed == 0 else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch oracle for a molt oracle dump "
                                 "(forward, backward, AdamW) in float64.")
    ap.add_argument("dump", metavar="DUMP.h5")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="max allowed max|a-b|/max|b| per tensor (default 1e-4)")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(True)
    try:
        return run(a.dump, a.tol)
    except Malformed as e:
        print("oracle: malformed dump %s: %s" % (a.dump, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""torch_llama.py — the PyTorch oracle for molt's forward, backward and AdamW,
dense and Mixture-of-Experts.

usage: torch_llama.py DUMP.h5 [--tol 1e-4]

Reads a dump written by tests/ref/oracle_dump.c (format below), rebuilds the
LLaMA-style model (with its routers and experts) in float64 from the dumped
float32 weights, and checks

  /out/logits, /out/loss          forward at the dumped weights (loss = LM loss)
  /grad/<param path>              d objective / d param for every trainable param
  /after/<param path>             trainables after `adam_steps` AdamW steps

where objective = LM loss (mean CE) + the auxiliary router loss (MoE configs
with moe.aux; printed as "aux loss"). Per tensor: err = max|a - b| /
max(max|b|, 1e-30), b = oracle; OK iff err <= tol. One line per tensor, then
"oracle: N tensors compared, K failed" (MoE: followed by the aux loss and the
smallest routing margin). Exit 0 iff nothing failed, 1 if something failed, 2
on a malformed dump (missing/unexpected dataset or attribute, bad shape, bad
config).

Dump format (HDF5):
  attrs on /: config      resolved INI text (configparser-readable)
              adam_steps  int
  /base/<HF name>         float32 [out, in]: model.embed_tokens.weight [V,d],
                          model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
                          model.layers.{i}.mlp.{gate,up,down}_proj.weight (not with
                          moe.placement = ffn),
                          model.layers.{i}.{input,post_attention}_layernorm.weight,
                          model.norm.weight, lm_head.weight (absent when tied)
  /adapters/<module>/shared/lora_A [r,in], lora_B [out,r]
                          <module> = model.layers.{i}.self_attn.q_proj, ...
                          y = W x + (alpha/r) B (A x)
  /adapters/<module>/expert_{e:03d}/lora_A, lora_B     LoRA experts (plugin on
                          moe.targets; fused_mlp on gate/up/down_proj)
  /routers/<module>/weight [N,in]   plugin: <module> = the projection
  /routers/model.layers.{i}.mlp/weight [N,d] (+ bias [N], router = factor)
                          fused_mlp and ffn
  /experts/model.layers.{i}.mlp/expert_{e:03d}/{gate,up,down}_proj.weight
                          ffn: [F,d], [F,d], [d,F]
  /projector/model.mm_projector.{0,2}.{weight,bias}   model.projector = mlp2x_gelu
  /routers/model.mm_moe/weight [N,d], /experts/model.mm_moe/expert_{e:03d}/...
                          moe.placement = xattn (Parrot, DESIGN §4)
  /batch/inputs, /batch/targets   int32 [B,T]; target -1 = ignored
  /batch/features [B, n_ft, feat_dim], /batch/plen [B]   feature inputs: the
                          projected (and xattn-mixed) features replace the
                          embeddings at positions 1..n_ft; the prompt is
                          positions 1+n_ft .. plen-1
  /out/xattn [B*n_ft, d]  the module's output; /out/dfeat [B*n_ft, feat_dim]
                          d objective / d features; /out/dembed [B*T, d] (full
                          mode) d objective / d embeddings (0 at the span)
  /out/logits [B,T,V], /out/loss [1]
  /grad/<group>/<path>, /after/<group>/<path>   for every trainable

Trainable: full mode -> every base weight and ffn expert; peft -> none of
those, plus every RMSNorm weight when lora.train_norms. Always: LoRA A/B
(shared and experts) and routers. Weight decay on 2-D parameters only.

MoE (DESIGN §2-§4, include/molt/router.h), z = router logits of a site over
all B*T tokens of the batch (padding included, rows in b*T+t order),
p = softmax(z):
  plugin     router input = the projection's input x;
             y = W x + sum_{e selected} w_e (alpha/r) B_e A_e x
  fused_mlp  router on h = post_attention_layernorm(x); expert e = SwiGLU FFN
             with weights W + (alpha/r) B_e A_e; out = sum_e w_e E_e(h)
  ffn        the same with each expert's own weights (z = W_g h + b for factor)
  routers    topk (w = p renormalised over the k largest), topp (prefix with
             cumsum >= top_p, crossing kept, w = p), dynmole (cumsum <= top_p,
             >= keep_top_k, all N when H_q(p) > entropy_threshold < 1, w = p),
             switch (top-1, w = p), soft (all, w = p), expert_choice (expert e
             takes its top-C tokens by p, C = molt_router_capacity), factor
             (top-k one-hot, w = N/k constant). Ties: lower index. The
             selection is a constant; it is computed in float64 from p.
  aux        per site, then summed (aux_reduce = sum) or averaged (mean) over
             sites: balance = coef N sum_i f_i P_i, f_i = count_i/(T k_eff)
             constant; dynmole = coef H_q mean + coef_bal N sum_i f_i P_i with
             f_i = mean_t w_ti detached; zloss = coef mean_t lse(z_t)^2.

Choices made where the format is silent (documented here on purpose):
  * the set of /grad datasets must equal the trainable set (missing or extra
    is a FAIL line); likewise /after when adam_steps > 0. With adam_steps == 0
    an /after group, if present, is compared as well (must equal the weights).
  * /adapters, /routers and /experts must hold exactly the modules the config
    implies (exit 2 otherwise); with lora.targets = none and no LoRA experts
    /adapters must be absent or empty.
  * a batch in which every target is -1 gives loss 0 (sum / max(count, 1)).
  * /out/loss may be stored as shape [1] or as a scalar; /out/logits as
    [B,T,V] or [B*T,V] (what oracle_dump.c writes; same row-major data).
  * lora.targets and moe.targets also accept "all" (every projection), as
    molt's parser does; a config without a [moe] section is dense.
  * a shape mismatch between a dumped output/grad/after tensor and the oracle
    is a FAIL line (not exit 2); a mis-shaped weight is exit 2.
  * booleans in the config accept true/false, 1/0, yes/no, on/off.
  * router settings molt keeps as float (top_p, entropy_threshold, entropy_q,
    capacity_factor) are rounded to fp32 first, as molt does.
  * ffn with moe.expert_d_ff = 0: every layer's experts are model.d_ff / (the
    expert count of layer 0) wide (molt's rule; matters for per-layer lists).
  * lora.dropout must be 0, and moe.jitter must be 0 with router = switch
    (random; exit 2 otherwise).
  * routing decisions within MARGIN_WARN of flipping (a top-k gap, a cumsum
    against top_p, H_q against the threshold, an expert-choice capacity
    boundary), at the dumped weights or in any AdamW step, print a WARNING:
    molt decides in fp32, so such a decision may legitimately differ.

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
MLP = ("gate_proj", "up_proj", "down_proj")
PLACEMENTS = ("none", "plugin", "fused_mlp", "ffn", "xattn")
ROUTERS = ("topk", "topp", "dynmole", "switch", "soft", "expert_choice", "factor")
AUX = ("balance", "dynmole", "zloss", "pa")
ENTROPY_SHIFT = 1e-5  # p~ = p + 1e-5 of the Tsallis entropy (DESIGN §3)
MARGIN_WARN = 1e-6
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
def f32(x):
    """x rounded to fp32: molt keeps these router settings as float."""
    return float(np.float32(x))


def parse_mask(cfg, sec, key, names):
    """A comma list of names (molt's T_MASK); 'all' = every name, ''/'none' = empty."""
    t = cfg.raw(sec, key).replace(" ", "")
    if t.lower() in ("", "none"):
        return []
    out = [p for p in t.split(",") if p and p != "none"]
    if "all" in out:
        return list(names)
    for p in out:
        if p not in names:
            raise Malformed("attribute /config: %s.%s: unknown name %r (allowed: %s|all|none)"
                            % (sec, key, p, ",".join(names)))
    return [n for n in names if n in out]


def parse_experts(text, L):
    """moe.num_experts: 'N' or 'C1xL1,C2xL2,...' covering L layers -> [count per layer]."""
    text = text.replace(" ", "")
    try:
        if "x" not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return [n] * L
        out = []
        for item in text.split(","):
            c, nl = item.split("x")
            c, nl = int(c), int(nl)
            if c < 1 or nl < 1:
                raise ValueError
            out += [c] * nl
    except ValueError:
        raise Malformed("attribute /config: moe.num_experts = %r is not N or C1xL1,C2xL2,..." % text)
    if len(out) != L:
        raise Malformed("attribute /config: moe.num_experts = %r describes %d layers, model has %d"
                        % (text, len(out), L))
    return out


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
        self.targets = parse_mask(cfg, "lora", "targets", PROJS)
        self._moe(cfg)
        # routers exist (an xattn module with moe.enable = false has none)
        self.moe_on = self.placement != "none" and (self.placement != "xattn" or self.xattn_N > 0)
        if self.targets or self.placement in ("plugin", "fused_mlp"):
            self.r = cfg.int("lora", "r")
            self.alpha = cfg.float("lora", "alpha")
            if self.r <= 0:
                raise Malformed("attribute /config: lora.r must be positive")
            if cfg.cp.has_option("lora", "dropout") and cfg.float("lora", "dropout") != 0.0:
                raise Malformed("attribute /config: lora.dropout must be 0 in an oracle dump")
            self.scale = self.alpha / self.r
        else:
            self.r, self.alpha, self.scale = 0, 0.0, 0.0
        self.train_norms = cfg.bool("lora", "train_norms") if self.mode == "peft" else False
        has_proj = cfg.cp.has_option("model", "projector")
        self.projector = cfg.str("model", "projector", ("none", "mlp2x_gelu")) if has_proj else "none"
        if self.projector != "none":
            self.feat_dim = cfg.int("model", "feat_dim")
            self.n_ft = cfg.int("model", "feat_tokens")

    def _moe(self, cfg):
        """[moe]; absent section or placement none = the dense model."""
        has = cfg.cp.has_section("moe") and cfg.cp.has_option("moe", "placement")
        self.placement = cfg.str("moe", "placement", PLACEMENTS) if has else "none"
        self.moe_targets, self.n_exp = [], [0] * self.L
        self.aux, self.router = [], None
        self.xattn_N = 0
        if self.placement == "none":
            return
        if self.placement == "xattn":  # Parrot: one module on the projected features
            self.aux, self.aux_reduce, self.experts_train = [], "sum", True
            if cfg.str("moe", "router", ROUTERS) != "soft" or parse_mask(cfg, "moe", "aux", AUX):
                raise Malformed("attribute /config: xattn needs moe.router = soft and no moe.aux")
            if cfg.bool("moe", "enable"):
                self.xattn_N = parse_experts(cfg.raw("moe", "num_experts"), 1)[0]
            self.edff = cfg.int("moe", "expert_d_ff")
            self.moe_weight = f32(cfg.float("moe", "moe_weight"))
            return
        self.n_exp = parse_experts(cfg.raw("moe", "num_experts"), self.L)
        self.router = cfg.str("moe", "router", ROUTERS)
        if self.router == "factor" and self.placement != "ffn":
            raise Malformed("attribute /config: moe.router = factor needs moe.placement = ffn")
        if self.placement == "plugin":
            self.moe_targets = parse_mask(cfg, "moe", "targets", PROJS)
            if not self.moe_targets:
                raise Malformed("attribute /config: moe.placement = plugin needs moe.targets")
            both = set(self.moe_targets) & set(self.targets)
            if both:
                raise Malformed("attribute /config: %s in both lora.targets and moe.targets"
                                % ",".join(sorted(both)))
        elif set(self.targets) & set(MLP):
            raise Malformed("attribute /config: moe.placement = %s: lora.targets may only name "
                            "attention projections" % self.placement)
        self.top_k = cfg.int("moe", "top_k")
        self.keep_top_k = cfg.int("moe", "keep_top_k")
        tp = cfg.float("moe", "top_p")
        if tp <= 0:
            tp = 0.8 if self.router == "topp" else 0.75
        # molt_router_cfg holds these as float: use the same fp32 values
        self.top_p = f32(tp)
        self.entropy_threshold = f32(cfg.float("moe", "entropy_threshold"))
        self.entropy_q = f32(cfg.float("moe", "entropy_q"))
        cf = cfg.float("moe", "capacity_factor")
        self.capacity_factor = f32(cf if cf > 0 else 1.0)
        if self.router == "switch" and cfg.float("moe", "jitter") != 0.0:
            raise Malformed("attribute /config: moe.jitter must be 0 in an oracle dump "
                            "(switch router jitter is random)")
        self.aux = parse_mask(cfg, "moe", "aux", AUX)
        self.balance_coef = cfg.float("moe", "balance_coef")
        self.dynmole_coef = cfg.float("moe", "dynmole_coef")
        self.dynmole_balance_coef = cfg.float("moe", "dynmole_balance_coef")
        self.zloss_coef = cfg.float("moe", "zloss_coef")
        self.pa_coef = cfg.float("moe", "pa_coef")
        self.pa_teacher_prev = cfg.str("factor", "pa_input", ("residual", "teacher_prev")) == "teacher_prev"
        if self.router == "factor":
            self.experts_train = cfg.str("factor", "train", ("router", "router,experts")) == "router,experts"
        else:
            self.experts_train = self.mode == "full"
        self.pa_balance_coef = cfg.float("moe", "pa_balance_coef")
        self.aux_reduce = cfg.str("moe", "aux_reduce", ("sum", "mean"))
        if self.placement == "ffn":
            # molt: 0 -> model.d_ff / (experts of layer 0), one width for all layers
            e = cfg.int("moe", "expert_d_ff")
            self.edff = e if e > 0 else self.dff // self.n_exp[0]
            if self.edff < 1:
                raise Malformed("attribute /config: ffn expert width d_ff / experts is 0")

    def proj_shape(self, p):
        d, hd, H, Hkv, dff = self.d, self.hd, self.H, self.Hkv, self.dff
        return {"q_proj": (H * hd, d), "k_proj": (Hkv * hd, d), "v_proj": (Hkv * hd, d),
                "o_proj": (d, H * hd), "gate_proj": (dff, d), "up_proj": (dff, d),
                "down_proj": (d, dff)}[p]

    @staticmethod
    def module(i, p):
        return "model.layers.%d.%s.%s" % (i, "self_attn" if p in ATTN else "mlp", p)

    def expert_proj(self, p):
        """Projection p carries LoRA experts (plugin target, or fused_mlp's FFN)."""
        return p in self.moe_targets or (self.placement == "fused_mlp" and p in MLP)

    def has_base(self, p):
        return not (self.placement == "ffn" and p in MLP)

    def shapes(self):
        """Every parameter: 'base/<HF name>', 'adapters/...', 'routers/...', 'experts/...'."""
        s = {"base/model.embed_tokens.weight": (self.V, self.d)}
        for i in range(self.L):
            for p in PROJS:
                if self.has_base(p):
                    s["base/" + self.module(i, p) + ".weight"] = self.proj_shape(p)
            s["base/model.layers.%d.input_layernorm.weight" % i] = (self.d,)
            s["base/model.layers.%d.post_attention_layernorm.weight" % i] = (self.d,)
        s["base/model.norm.weight"] = (self.d,)
        if not self.tied:
            s["base/lm_head.weight"] = (self.V, self.d)
        for i in range(self.L):
            N = self.n_exp[i]
            for p in PROJS:
                o, n = self.proj_shape(p)
                m = self.module(i, p)
                if self.expert_proj(p):
                    if self.placement == "plugin":
                        s["routers/%s/weight" % m] = (N, n)
                    for e in range(N):
                        s["adapters/%s/expert_%03d/lora_A" % (m, e)] = (self.r, n)
                        s["adapters/%s/expert_%03d/lora_B" % (m, e)] = (o, self.r)
                elif p in self.targets:
                    s["adapters/%s/shared/lora_A" % m] = (self.r, n)
                    s["adapters/%s/shared/lora_B" % m] = (o, self.r)
            if self.placement in ("fused_mlp", "ffn"):
                s["routers/model.layers.%d.mlp/weight" % i] = (N, self.d)
                if self.router == "factor":
                    s["routers/model.layers.%d.mlp/bias" % i] = (N,)
            if self.placement == "ffn":
                F = self.edff
                for e in range(N):
                    pre = "experts/model.layers.%d.mlp/expert_%03d/" % (i, e)
                    s[pre + "gate_proj.weight"] = (F, self.d)
                    s[pre + "up_proj.weight"] = (F, self.d)
                    s[pre + "down_proj.weight"] = (self.d, F)
                if "pa" in self.aux and self.experts_train:  # the stored dense FFN (frozen)
                    pre = "teacher/model.layers.%d.mlp." % i
                    s[pre + "gate_proj.weight"] = (self.dff, self.d)
                    s[pre + "up_proj.weight"] = (self.dff, self.d)
                    s[pre + "down_proj.weight"] = (self.d, self.dff)
        if self.projector != "none":
            pre = "projector/model.mm_projector."
            s[pre + "0.weight"], s[pre + "0.bias"] = (self.d, self.feat_dim), (self.d,)
            s[pre + "2.weight"], s[pre + "2.bias"] = (self.d, self.d), (self.d,)
        if self.xattn_N:
            s["routers/model.mm_moe/weight"] = (self.xattn_N, self.d)
            for e in range(self.xattn_N):
                pre = "experts/model.mm_moe/expert_%03d/" % e
                s[pre + "gate_proj.weight"] = (self.edff, self.d)
                s[pre + "up_proj.weight"] = (self.edff, self.d)
                s[pre + "down_proj.weight"] = (self.d, self.edff)
        return s

    def describe(self):
        if self.placement == "xattn":
            return "projector=%s xattn experts=%d edff=%d moe_weight=%g" % (
                self.projector, self.xattn_N, self.edff, self.moe_weight)
        if self.placement == "none":
            return "moe=none"
        return ("moe=%s router=%s experts=%s%s aux=%s(%s)"
                % (self.placement, self.router, ",".join(str(n) for n in self.n_exp),
                   (" targets=" + ",".join(self.moe_targets)) if self.moe_targets else "",
                   ",".join(self.aux) or "none", self.aux_reduce))


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


# ---------------------------------------------------------------- routers
def tsallis_np(p, q):
    """Normalised Tsallis entropy per row of p [T,N] (float64), p~ = p + 1e-5."""
    N = p.shape[1]
    if N <= 1:
        return np.zeros(p.shape[0])
    pt = p + ENTROPY_SHIFT
    if q == 1.0:
        return -(pt * np.log(pt)).sum(1) / math.log(N)
    return (1.0 - (pt ** q).sum(1)) / (1.0 - float(N) ** (1.0 - q))


def tsallis_torch(p, q):
    N = p.shape[1]
    if N <= 1:
        return torch.zeros(p.shape[0], dtype=DT)
    pt = p + ENTROPY_SHIFT
    if q == 1.0:
        return -(pt * torch.log(pt)).sum(1) / math.log(N)
    return (1.0 - pt.pow(q).sum(1)) / (1.0 - float(N) ** (1.0 - q))


def capacity(spec, T, N):
    """molt_router_capacity: ceil(cf*T*k/N) with a 1e-6 relative slack, in [1, T]."""
    k = min(max(spec.top_k, 1), N)
    C = math.ceil(spec.capacity_factor * T * k / N * (1.0 - 1e-6))
    return max(1, min(T, C))


def select(spec, pn):
    """Selection mask [T,N] (bool) from p (float64 numpy, rows = tokens), the
    smallest decision margin (how far the decision is from flipping) and the
    number of exact ties between tokens with identical p rows (expert_choice;
    identical router inputs, e.g. sequences sharing a prefix: broken by the
    lower token index on both sides, so not counted as a margin)."""
    T, N = pn.shape
    sel = np.zeros((T, N), dtype=bool)
    margin, ties = math.inf, 0
    kind = spec.router
    if kind == "expert_choice":
        C = capacity(spec, T, N)
        idx = np.arange(T)
        for e in range(N):
            order = np.lexsort((idx, -pn[:, e]))  # p descending, lower token first
            sel[order[:C], e] = True
            if C < T:
                a, b = order[C - 1], order[C]
                if np.array_equal(pn[a], pn[b]):
                    ties += 1
                else:
                    margin = min(margin, pn[a, e] - pn[b, e])
        return sel, margin, ties
    order = np.argsort(-pn, axis=1, kind="stable")  # p descending, lower expert first
    ps = np.take_along_axis(pn, order, axis=1)
    H = tsallis_np(pn, spec.entropy_q) if kind == "dynmole" else None
    for t in range(T):
        if kind == "soft":
            n = N
        elif kind == "switch":
            n = 1
        elif kind in ("topk", "factor"):
            n = min(max(spec.top_k, 1), N)
        elif kind == "topp":
            if spec.top_p >= 1.0:
                n = N
            else:
                cs = np.cumsum(ps[t])
                hit = np.nonzero(cs >= spec.top_p)[0]
                n = int(hit[0]) + 1 if hit.size else N
                margin = min(margin, float(np.min(np.abs(cs[:N - 1] - spec.top_p))) if N > 1 else margin)
        elif kind == "dynmole":
            thr = spec.entropy_threshold
            if thr < 1.0:
                margin = min(margin, abs(H[t] - thr))
            if thr < 1.0 and H[t] > thr:
                n = N
            else:
                if spec.top_p >= 1.0:
                    n = N
                else:
                    cs = np.cumsum(ps[t])
                    n = 0
                    for j in range(N):
                        if cs[j] > spec.top_p:
                            break
                        n = j + 1
                    margin = min(margin, float(np.min(np.abs(cs[:N - 1] - spec.top_p))) if N > 1 else margin)
                n = max(n, min(max(spec.keep_top_k, 0), N))
        else:
            raise Malformed("unknown router %r" % kind)
        sel[t, order[t, :n]] = True
        if 0 < n < N and kind != "soft":
            margin = min(margin, ps[t, n - 1] - ps[t, n])
    return sel, margin, ties


class Routing:
    """Router losses and decision margins collected over one forward."""

    def __init__(self):
        self.terms = []      # per-site aux loss (torch scalar)
        self.margin = math.inf
        self.ties = 0        # expert_choice boundary ties between identical tokens
        self.sites = 0


def route(spec, z, N, book):
    """z [T,N] router logits (rows = all B*T tokens) -> combine weights w [T,N];
    appends this site's auxiliary loss to book. The selection is a constant."""
    p = torch.softmax(z, dim=-1)
    pn = p.detach().numpy()
    T = pn.shape[0]
    sel, margin, ties = select(spec, pn)
    book.margin = min(book.margin, margin)
    book.ties += ties
    book.sites += 1
    m = torch.from_numpy(sel.astype(np.float64))
    if spec.router == "topk":
        pm = p * m
        w = pm / pm.sum(-1, keepdim=True)
    elif spec.router == "factor":
        k = min(max(spec.top_k, 1), N)
        w = m * (float(N) / float(k))  # constant: no gradient to z through w
    else:
        w = p * m
    aux = torch.zeros((), dtype=DT)
    if T > 0:
        P = p.mean(0)
        if "balance" in spec.aux:
            if spec.router in ("topk", "factor", "expert_choice"):
                k_eff = float(min(max(spec.top_k, 1), N))
            elif spec.router == "switch":
                k_eff = 1.0
            else:
                k_eff = float(sel.sum()) / T
            cnt = torch.from_numpy(sel.sum(0).astype(np.float64))
            f = cnt / (T * k_eff) if k_eff > 0 else torch.zeros(N, dtype=DT)
            aux = aux + spec.balance_coef * N * (f * P).sum()
        if "dynmole" in spec.aux:
            fw = w.detach().mean(0)
            aux = aux + spec.dynmole_coef * tsallis_torch(p, spec.entropy_q).mean() \
                + spec.dynmole_balance_coef * N * (fw * P).sum()
        if "zloss" in spec.aux:
            aux = aux + spec.zloss_coef * torch.logsumexp(z, dim=-1).pow(2).mean()
    book.terms.append(aux)
    return w


def pa_loss(spec, z, w, ys, N, teacher=None):
    """FactorLLM (DESIGN §4 pa): teacher = sum of the experts (the dense FFN
    they were sliced from), ell_e = mean_d (E_e - T k/N)^2, pseudo-label k-hot
    on the lowest ell (ties: lower index), KL(clip(softmax z) || clip(softmax
    m)) over tokens, plus pa_balance_coef * mean(topk_mask * softmax z). The
    errors, label and mask are constants."""
    k = min(max(spec.top_k, 1), N)
    Y = torch.stack([y.detach() for y in ys])  # [N, T, d]
    teacher = Y.sum(0) if teacher is None else teacher.detach()
    ell = ((Y - teacher * (k / N)) ** 2).mean(-1).t().numpy()  # [T, N]
    T = ell.shape[0]
    m = torch.zeros(T, N, dtype=DT)
    for t in range(T):
        order = sorted(range(N), key=lambda i: (ell[t, i], i))
        m[t, order[:k]] = 1.0
    p = torch.softmax(z, -1)
    Pc = torch.clamp(p, 1e-7, 1 - 1e-7)
    Qc = torch.clamp(torch.softmax(m, -1), 1e-7, 1 - 1e-7)
    kl = (Pc * (Pc.log() - Qc.log())).sum(-1).mean()
    mask = (w.detach() > 0).to(DT)
    return spec.pa_coef * kl + spec.pa_balance_coef * (mask * p).mean()


def parrot_input(spec, P, x, feat, plen, book):
    """Projector (mlp2x_gelu) and the xattn MoE (DESIGN §4) on the features;
    the result replaces x[:, 1:1+n_ft]. Written from the formulas:
    a = softmax(H_v[0] H_t^T / sqrt(d)), z = a H_t, w = softmax(W_g z),
    out = sum_e w_e SwiGLU_e(H_v) + moe_weight H_v."""
    B, nf, d = feat.shape[0], spec.n_ft, spec.d
    pre = "projector/model.mm_projector."
    h1 = feat @ P[pre + "0.weight"].t() + P[pre + "0.bias"]
    hv = torch.nn.functional.gelu(h1) @ P[pre + "2.weight"].t() + P[pre + "2.bias"]  # [B,nf,d]
    out = hv
    if spec.xattn_N:
        silu = torch.nn.functional.silu
        rows = []
        for j in range(B):
            ht = x[j, 1 + nf:int(plen[j])]  # prompt embeddings
            a = torch.softmax(hv[j, 0] @ ht.t() / math.sqrt(d), dim=-1)
            z = a @ ht
            w = torch.softmax(P["routers/model.mm_moe/weight"] @ z, dim=-1)
            y = spec.moe_weight * hv[j]
            for e in range(spec.xattn_N):
                ep = "experts/model.mm_moe/expert_%03d/" % e
                hid = silu(hv[j] @ P[ep + "gate_proj.weight"].t()) * (hv[j] @ P[ep + "up_proj.weight"].t())
                y = y + w[e] * (hid @ P[ep + "down_proj.weight"].t())
            rows.append(y)
        out = torch.stack(rows)
    book.xattn = out
    return torch.cat([x[:, :1], out, x[:, 1 + nf:]], dim=1)


def forward(spec, P, inputs, targets, book=None, feat=None, plen=None):
    """P maps parameter path ('base/<name>', 'adapters/<m>/shared/lora_A', ...)
    to a float64 tensor. Returns (logits [B,T,V], LM loss, aux loss) where the
    aux loss is the router losses summed (or averaged) over all sites; the
    differentiated objective is LM loss + aux loss."""
    B, T = inputs.shape
    H, Hkv, hd = spec.H, spec.Hkv, spec.hd
    scale = spec.scale
    book = book if book is not None else Routing()
    book.terms = []

    def lora(x, pre):
        return scale * ((x @ P[pre + "/lora_A"].t()) @ P[pre + "/lora_B"].t())

    def proj(i, p, h):
        m = spec.module(i, p)
        y = h @ P["base/" + m + ".weight"].t()
        if p in spec.moe_targets:  # plugin: router on the projection input
            N = spec.n_exp[i]
            x2 = h.reshape(B * T, -1)
            w = route(spec, x2 @ P["routers/%s/weight" % m].t(), N, book)
            y2 = y.reshape(B * T, -1)
            for e in range(N):
                y2 = y2 + w[:, e:e + 1] * lora(x2, "adapters/%s/expert_%03d" % (m, e))
            y = y2.reshape(y.shape)
        elif p in spec.targets:
            y = y + lora(h, "adapters/%s/shared" % m)
        return y

    def moe_ffn(i, h):
        N = spec.n_exp[i]
        site = "model.layers.%d.mlp" % i
        x2 = h.reshape(B * T, spec.d)
        z = x2 @ P["routers/%s/weight" % site].t()
        if spec.router == "factor":
            z = z + P["routers/%s/bias" % site]
        w = route(spec, z, N, book)
        out = torch.zeros_like(x2)
        silu = torch.nn.functional.silu
        ys = []
        for e in range(N):
            if spec.placement == "ffn":
                pre = "experts/%s/expert_%03d/" % (site, e)
                g = x2 @ P[pre + "gate_proj.weight"].t()
                u = x2 @ P[pre + "up_proj.weight"].t()
                hid = silu(g) * u
                y = hid @ P[pre + "down_proj.weight"].t()
            else:  # fused_mlp: W + s B_e A_e on gate, up, down
                def ad(x, p):
                    m = spec.module(i, p)
                    return x @ P["base/" + m + ".weight"].t() + \
                        lora(x, "adapters/%s/expert_%03d" % (m, e))
                hid = silu(ad(x2, "gate_proj")) * ad(x2, "up_proj")
                y = ad(hid, "down_proj")
            out = out + w[:, e:e + 1] * y
            ys.append(y)
        if "pa" in spec.aux and spec.placement == "ffn":
            def swiglu(pre, xin):
                return (silu(xin @ P[pre + "gate_proj.weight"].t()) *
                        (xin @ P[pre + "up_proj.weight"].t())) @ P[pre + "down_proj.weight"].t()
            xp, ysp = x2, ys
            if spec.pa_teacher_prev and i > 0:  # the quirk: layer i-1's teacher output
                xp = book.prev_teacher
                ysp = [swiglu("experts/%s/expert_%03d/" % (site, e), xp) for e in range(N)]
            if ("teacher/%s.gate_proj.weight" % site) in P:  # the stored dense FFN
                teacher = swiglu("teacher/%s." % site, xp).detach()
            else:
                teacher = torch.stack([y.detach() for y in ysp]).sum(0)
            book.prev_teacher = teacher
            book.terms[-1] = book.terms[-1] + pa_loss(spec, z, w, ysp, N, teacher)
        return out.reshape(B, T, spec.d)

    inv_freq = spec.theta ** (-torch.arange(0, hd, 2, dtype=DT) / hd)
    freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1,1,T,hd]
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    x = P["base/model.embed_tokens.weight"][inputs.long()]  # [B,T,d]
    if spec.projector != "none":
        if x.requires_grad:  # d objective / d embeddings: the prompt's reach through xattn too
            x.retain_grad()
        book.x0 = x
        x = parrot_input(spec, P, x, feat, plen, book)
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
        if spec.placement in ("fused_mlp", "ffn"):
            x = x + moe_ffn(i, h)
        else:
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
    aux = torch.zeros((), dtype=DT)
    for t in book.terms:
        aux = aux + t
    if spec.placement != "none" and spec.aux_reduce == "mean" and book.terms:
        aux = aux / len(book.terms)
    return logits, loss, aux


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
        if n.startswith(("adapters/", "routers/", "projector/")):  # LoRA, routers, projector
            names.append(n)
        elif n.startswith("experts/"):  # full FFN experts: full mode (factor: factor.train)
            if spec.experts_train:
                names.append(n)
        elif n.startswith("teacher/"):  # pa's stored dense FFN: frozen
            pass
        elif spec.mode == "full":
            names.append(n)
        elif spec.train_norms and P[n].dim() == 1:  # every RMSNorm weight
            names.append(n)
    return sorted(names)


def adam_run(spec, P, inputs, targets, tr, steps, book, feat=None, plen=None):
    """AdamW on a copy of the trainables of P; returns {name: tensor}. The
    objective of every step is LM loss + aux loss (routing recomputed)."""
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
        _, loss, aux = forward(spec, Q, inputs, targets, book, feat, plen)
        (loss + aux).backward()
        for n in names:  # no path to the objective (factor router without aux): 0, still decayed
            if params[n].grad is None:
                params[n].grad = torch.zeros_like(params[n])
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


def load_group(f, P, want, group):
    """Reads every /<group>/... dataset of `want` into P; extra datasets are malformed."""
    have = set(list_datasets(f, group))
    names = {n[len(group) + 1:]: shp for n, shp in want.items() if n.startswith(group + "/")}
    for n, shp in sorted(names.items()):
        a = read_ds(f, "/%s/%s" % (group, n))
        if a.shape != shp:
            raise Malformed("dataset /%s/%s has shape %s, config says %s" % (group, n, a.shape, shp))
        P[group + "/" + n] = torch.from_numpy(a.astype(np.float64))
    extra = sorted(have - set(names))
    if extra:
        why = {"base": "not in the config's model", "adapters": "not in lora.targets / the experts",
               "routers": "not a router of the config", "experts": "not an expert of the config",
               "teacher": "no pa teacher in the config (moe.aux = pa, factor.train = router,experts)",
               "projector": "model.projector = none in the config"}
        if group == "base" and extra[0] == "lm_head.weight":
            raise Malformed("unexpected dataset /base/lm_head.weight (tied embeddings)")
        raise Malformed("unexpected dataset /%s/%s (%s)" % (group, extra[0], why[group]))


def run(path, tol, no_aux=False):
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
        if no_aux:
            spec.aux = []
        tr = read_train(cfg) if steps > 0 else None

        # weights
        P = {}
        want = spec.shapes()
        for group in ("base", "adapters", "routers", "experts", "teacher", "projector"):
            load_group(f, P, want, group)

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
        feat = plen = None
        if spec.projector != "none":
            feat = torch.from_numpy(read_ds(f, "/batch/features").astype(np.float64))
            plen = read_ds(f, "/batch/plen").astype(np.int64)
            if feat.shape != (B, spec.n_ft, spec.feat_dim) or plen.shape != (B,):
                raise Malformed("/batch/features %s, /batch/plen %s: want [%d,%d,%d], [%d]"
                                % (tuple(feat.shape), plen.shape, B, spec.n_ft, spec.feat_dim, B))
            feat.requires_grad_(True)
        inputs = torch.from_numpy(inputs.astype(np.int64))
        targets = torch.from_numpy(targets.astype(np.int64))
        d_logits = read_ds(f, "/out/logits")
        if d_logits.shape == (B * T, spec.V):  # molt writes rows of B*T tokens
            d_logits = d_logits.reshape(B, T, spec.V)
        d_loss = read_ds(f, "/out/loss")
        if d_loss.size != 1:
            raise Malformed("/out/loss has shape %s, want [1]" % (d_loss.shape,))

        names = trainable_names(spec, P)
        print("oracle: %s  mode=%s L=%d d=%d H=%d Hkv=%d d_ff=%d V=%d tied=%d lora=%s %s B=%d T=%d "
              "adam_steps=%d trainables=%d tol=%g"
              % (path, spec.mode, spec.L, spec.d, spec.H, spec.Hkv, spec.dff, spec.V,
                 spec.tied, ",".join(spec.targets) or "none", spec.describe(), B, T, steps,
                 len(names), tol))

        rep = Report(tol)
        book = Routing()
        # forward + backward at the dumped weights (objective: LM loss + aux loss)
        for n in names:
            P[n].requires_grad_(True)
        logits, loss, aux = forward(spec, P, inputs, targets, book, feat, plen)
        (loss + aux).backward()
        aux0, margin0 = float(aux), book.margin
        if feat is not None:  # the xattn module's output, and the features' gradient
            rep_x = book.xattn.detach().reshape(B * spec.n_ft, spec.d)
        if spec.moe_on:
            print("oracle: LM loss %.9g  aux loss %.9g (%s over %d sites: %s)  objective %.9g  "
                  "min routing margin %.3g%s" % (float(loss), aux0, spec.aux_reduce, book.sites,
                                                 ",".join(spec.aux) or "none", float(loss) + aux0,
                                                 margin0, (" (%d exact ties of identical tokens "
                                                           "at a capacity boundary, lower index "
                                                           "wins)" % book.ties) if book.ties else ""))
        rep.compare("out/logits", d_logits, logits)
        if feat is not None:
            rep.compare("out/xattn", read_ds(f, "/out/xattn"), rep_x)
            rep.compare("out/dfeat", read_ds(f, "/out/dfeat"),
                        feat.grad.reshape(B * spec.n_ft, spec.feat_dim))
            if book.x0.grad is not None:  # the embedding output (prompt embeddings) trains
                rep.compare("out/dembed", read_ds(f, "/out/dembed"),
                            book.x0.grad.reshape(B * T, spec.d))
        rep.compare("out/loss", d_loss.reshape(1), loss.detach().reshape(1))
        if spec.moe_on:  # the auxiliary router loss of the dumped weights
            rep.compare("out/aux_loss", read_ds(f, "/out/aux_loss").reshape(1),
                        torch.tensor([aux0], dtype=torch.float64))

        have = set(list_datasets(f, "grad"))
        for n in names:
            if n not in have:
                rep.missing("grad/" + n)
            else:
                g = P[n].grad if P[n].grad is not None else torch.zeros_like(P[n])
                rep.compare("grad/" + n, read_ds(f, "/grad/" + n), g)
        for n in sorted(have - set(names)):
            rep.extra("grad/" + n)

        # AdamW
        have = set(list_datasets(f, "after"))
        if steps > 0 or have:
            book.margin = math.inf
            after = adam_run(spec, P, inputs, targets, tr, steps, book, feat, plen) if steps > 0 else \
                {n: P[n].detach() for n in names}
            for n in names:
                if n not in have:
                    rep.missing("after/" + n)
                else:
                    rep.compare("after/" + n, read_ds(f, "/after/" + n), after[n])
            for n in sorted(have - set(names)):
                rep.extra("after/" + n)
            if spec.moe_on and steps > 0:
                print("oracle: min routing margin over the %d AdamW steps %.3g" % (steps, book.margin))
        if spec.moe_on and min(margin0, book.margin) < MARGIN_WARN:
            print("oracle: WARNING a routing decision is within %.1g of flipping: fp32 rounding "
                  "may select differently (change train.seed)" % MARGIN_WARN)

    if spec.moe_on:
        print("oracle: %d tensors compared, %d failed (aux %.9g, margin %.2g)"
              % (rep.n, rep.failed, aux0, min(margin0, book.margin)))
    else:
        print("oracle: %d tensors compared, %d failed" % (rep.n, rep.failed))
    return 0 if rep.failed == 0 else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch oracle for a molt oracle dump "
                                 "(forward, backward, AdamW) in float64.")
    ap.add_argument("dump", metavar="DUMP.h5")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="max allowed max|a-b|/max|b| per tensor (default 1e-4)")
    ap.add_argument("--no-aux", action="store_true",
                    help="diagnostic: differentiate the LM loss alone (ignore moe.aux)")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(True)
    try:
        return run(a.dump, a.tol, a.no_aux)
    except Malformed as e:
        print("oracle: malformed dump %s: %s" % (a.dump, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""eval_ref.py — the PyTorch oracle for `molt eval` multiple-choice scoring.

usage: eval_ref.py WEIGHTS.h5 --tasks FILE.jsonl [...] --samples OUT.jsonl [...]
                   [--tol 1e-4] [--same-tol 1e-6]

Rebuilds the model of WEIGHTS.h5 (a molt final.h5 or training checkpoint:
its root attribute `config` and its /base, /adapters, /routers, /experts
datasets) in float64 with torch_llama.py's forward, scores every choice of
every JSONL file as DESIGN §8 and include/molt/mceval.h say, and checks each
--samples file that `molt eval --log-samples` wrote:

  * one line per example in file order, with the same file, index, label;
  * per choice: tokens and bytes equal; loglik within tol, measured as
    |molt - ref| / max(1, |ref|) (absolute below 1 nat, relative above);
  * pred and pred_norm (hence acc and acc_norm) equal to the reference's
    argmax, unless the reference's top two are closer than the tolerance
    (a near tie: reported, not failed).

With several --samples files (e.g. np 1 and np 4), each must also equal the
first: the same pred/pred_norm everywhere and logliks within same-tol (same
measure). Prints the largest differences and "eval_ref: OK" or the failures;
exit 0 iff nothing failed, 1 on a failure, 2 on malformed input.

Scoring (molt's rule, repeated here on purpose): the tokens of choice j are
[<bos>=256] + context bytes + choice bytes. The model sees all but the last,
and the choice's bytes are the targets. If that input exceeds
model.max_seq_len, the oldest context bytes go (the <bos> stays). Each
sequence is run alone, unpadded, so this also checks that molt's padding and
batching change nothing. The forward is inference: lora.dropout and
moe.jitter are ignored (torch_llama.py refuses them in training dumps).
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402

BOS = 256


def read_jsonl(path):
    """[(context, [choices], label)] with blank lines skipped, as molt does."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip(b" \t\r\n"):
                continue
            try:
                d = json.loads(raw.decode("utf-8"))
                out.append((d["context"], list(d["choices"]), int(d["label"])))
            except (ValueError, KeyError, TypeError) as e:
                raise tl.Malformed("%s:%d: %s" % (path, n, e))
    return out


def load_model(path):
    with h5py.File(path, "r") as f:
        cfg = tl.Config(tl.attr_text(f, "config"))
        # inference: dropout and router jitter play no part
        if cfg.cp.has_section("lora"):
            cfg.cp.set("lora", "dropout", "0")
        if cfg.cp.has_section("moe"):
            cfg.cp.set("moe", "jitter", "0")
        spec = tl.Spec(cfg)
        P = {}
        want = spec.shapes()
        for group in ("base", "adapters", "routers", "experts"):
            tl.load_group(f, P, want, group)
        tmax = cfg.int("model", "max_seq_len")
    return spec, P, tmax


def sequence(context, choice, tmax):
    c, k = context.encode("utf-8"), choice.encode("utf-8")
    keep = min(len(c), tmax - len(k))
    toks = [BOS] + list(c[len(c) - keep:]) + list(k)
    inputs = toks[:-1]
    targets = [-1] * keep + list(k)
    assert len(inputs) == len(targets) <= tmax
    return inputs, targets, len(k)


def score(spec, P, tmax, files):
    """{file: [(label, [(loglik, tokens, bytes)])]}, smallest routing margin."""
    book = tl.Routing()
    res = {}
    with torch.no_grad():
        for path in files:
            rows = []
            for context, choices, label in read_jsonl(path):
                sc = []
                for ch in choices:
                    inputs, targets, k = sequence(context, ch, tmax)
                    x = torch.tensor([inputs], dtype=torch.int64)
                    y = torch.tensor([targets], dtype=torch.int64)
                    logits, _, _ = tl.forward(spec, P, x, y, book)
                    lp = torch.log_softmax(logits[0], dim=-1)
                    m = y[0] >= 0
                    ll = float(lp[m.nonzero().squeeze(1), y[0][m]].sum())
                    sc.append((ll, k, k))
                rows.append((label, sc))
            res[path] = rows
    return res, book.margin


def argmax(v):
    best = 0
    for i in range(1, len(v)):
        if v[i] > v[best]:
            best = i
    return best


def err(a, b):
    return abs(a - b) / max(1.0, abs(b))


def near_tie(v, tol):
    s = sorted(v, reverse=True)
    return len(s) > 1 and err(s[0], s[1]) <= tol


def read_samples(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise tl.Malformed("%s: %s" % (path, e))


def check(ref, samples, name, tol, fail):
    """Compare one samples file with the reference; returns the largest loglik error."""
    want = [(p, i, row) for p in ref for i, row in enumerate(ref[p])]
    if len(samples) != len(want):
        fail("%s: %d lines, expected %d examples" % (name, len(samples), len(want)))
        return math.inf
    worst = 0.0
    for line, (path, i, (label, sc)) in zip(samples, want):
        where = "%s: %s #%d" % (name, path, i)
        if line.get("file") != path or line.get("index") != i or line.get("label") != label:
            fail("%s: file/index/label %r/%r/%r, expected %r/%r/%r" % (
                where, line.get("file"), line.get("index"), line.get("label"), path, i, label))
            continue
        got = line.get("choices", [])
        if len(got) != len(sc):
            fail("%s: %d choices, expected %d" % (where, len(got), len(sc)))
            continue
        for j, (g, (ll, tok, nb)) in enumerate(zip(got, sc)):
            if g.get("tokens") != tok or g.get("bytes") != nb:
                fail("%s choice %d: tokens/bytes %r/%r, expected %d/%d"
                     % (where, j, g.get("tokens"), g.get("bytes"), tok, nb))
            e = err(float(g["loglik"]), ll)
            worst = max(worst, e)
            if not e <= tol:
                fail("%s choice %d: loglik %.9g, reference %.9g (err %.3g > %g)"
                     % (where, j, g["loglik"], ll, e, tol))
        lls = [s[0] for s in sc]
        norm = [s[0] / s[2] for s in sc]
        for key, vals, acc in (("pred", lls, "acc"), ("pred_norm", norm, "acc_norm")):
            p = argmax(vals)
            if line.get(key) != p or line.get(acc) != int(p == label):
                if near_tie(vals, tol):
                    print("eval_ref: note: %s %s = %r, reference %d: a near tie (within %g)"
                          % (where, key, line.get(key), p, tol))
                else:
                    fail("%s: %s/%s = %r/%r, reference %d/%d"
                         % (where, key, acc, line.get(key), line.get(acc), p, int(p == label)))
    return worst


def check_same(first, other, name, tol, fail):
    worst = 0.0
    if len(first) != len(other):
        fail("%s: %d lines, the first samples file has %d" % (name, len(other), len(first)))
        return math.inf
    for a, b in zip(first, other):
        for key in ("file", "index", "label", "pred", "pred_norm", "acc", "acc_norm"):
            if a.get(key) != b.get(key):
                fail("%s: %s #%s: %s %r, the first samples file has %r"
                     % (name, a.get("file"), a.get("index"), key, b.get(key), a.get(key)))
        for ca, cb in zip(a["choices"], b["choices"]):
            worst = max(worst, err(float(cb["loglik"]), float(ca["loglik"])))
    if not worst <= tol:
        fail("%s: loglik differs from the first samples file by %.3g > %g" % (name, worst, tol))
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch float64 oracle for molt eval --log-samples")
    ap.add_argument("weights", metavar="WEIGHTS.h5")
    ap.add_argument("--tasks", nargs="+", required=True, metavar="FILE.jsonl")
    ap.add_argument("--samples", nargs="+", required=True, metavar="OUT.jsonl")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="loglik tolerance against the reference, |a-b|/max(1,|b|) (1e-4)")
    ap.add_argument("--same-tol", type=float, default=1e-6,
                    help="loglik tolerance between the samples files (1e-6)")
    a = ap.parse_args(argv)
    failures = []

    def fail(msg):
        failures.append(msg)
        print("eval_ref: FAIL " + msg)

    try:
        spec, P, tmax = load_model(a.weights)
        ref, margin = score(spec, P, tmax, a.tasks)
        samples = [read_samples(s) for s in a.samples]
    except tl.Malformed as e:
        print("eval_ref: malformed input: %s" % e, file=sys.stderr)
        return 2
    n = sum(len(r) for r in ref.values())
    nc = sum(len(sc) for r in ref.values() for _, sc in r)
    print("eval_ref: %s (%s): %d examples, %d choices, max_seq_len %d, min routing margin %.3g"
          % (a.weights, spec.describe(), n, nc, tmax, margin))
    for path, rows in ref.items():
        acc = sum(argmax([s[0] for s in sc]) == lab for lab, sc in rows) / len(rows)
        accn = sum(argmax([s[0] / s[2] for s in sc]) == lab for lab, sc in rows) / len(rows)
        print("eval_ref: reference %s: n %d acc %.4f acc_norm %.4f" % (path, len(rows), acc, accn))
    for name, s in zip(a.samples, samples):
        w = check(ref, s, name, a.tol, fail)
        print("eval_ref: %s vs reference: max loglik err %.3g (tol %g)" % (name, w, a.tol))
    for name, s in zip(a.samples[1:], samples[1:]):
        w = check_same(samples[0], s, name, a.same_tol, fail)
        print("eval_ref: %s vs %s: max loglik err %.3g, predictions identical: %s"
              % (name, a.samples[0], w, "yes" if not failures else "see above"))
    print("eval_ref: %s" % ("OK" if not failures else "%d failures" % len(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

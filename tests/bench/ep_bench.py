#!/usr/bin/python3
"""Tables and cost-model projection of `launch/bench --ep` (see its --help).

usage: ep_bench.py DIR --warmup W --steps N --threads T --cores C [--json]

DIR/runs holds one line per molt run that launch/bench made:
    model config variant np ep dispatch a2a_chunks status
and DIR/<model>/<variant>/ that run's molt.log (rank 0's stdout+stderr),
config.ini (the resolved configuration) and metrics.jsonl (log.every=1).

Measured: per phase, the median over the timed steps (step > W) of time_ms.

Projection (nothing hard-coded but the network constants below): one rank per
node, weak scaling with the per-rank batch of the measured np=1 run, its
compute per step t_compute = median over timed steps of (step - a2a - reduce),
P = ep = the largest divisor of `nodes` that is <= min(nodes, experts per site)
(= min(nodes, N) whenever that divides nodes; world = dp x ep must hold),
dp = nodes / ep, dispatch alltoall with one chunk:
  t_a2a  = sum_sites [ (3*F_fwd + 2*F_bwd)*(P-1)*alpha
                       + (F_fwd + F_bwd)*beta*rows*(in+out)*4*(P-1)/P ]
           a forward exchanges counts + tokens out + results back (3 messages
           per peer), a backward gradients out + back (2; the plan is reused);
           F_fwd = 2 (molt runs a routing pre-pass forward when world > 1 and an
           aux loss is on, as in both configs; else 1), F_bwd = 1. With
           F_fwd = F_bwd = 1 this is molt's own bracket 5(P-1)a + 2 rows(in+out)4 b f.
           rows = tokens per rank x experts per token (top-k: k, switch: 1, soft:
           N; top-p/dynmole: the np=1 run's measured experts_per_token of the site)
  t_ar(n, bytes) = 2*ceil(log2 n)*alpha + 2*(n-1)/n*bytes*beta   (0 when n = 1)
  t_allreduce = t_ar(nodes, 4*dense trainables) + t_ar(dp, 4*expert trainables
                held per rank = sum_sites ceil(N/ep) x one expert's trainables)
  t_step = t_compute + t_a2a + t_allreduce;  a2a share = t_a2a / t_step
The compute of the pre-pass forward and the few scalar all-reduces (token
count, loss, norm, router statistics) are left out.
"""
import argparse
import configparser
import json
import math
import re
import statistics
import sys

PHASES = ("route", "a2a", "expert", "combine", "reduce", "other", "step")
MLP = ("gate_proj", "up_proj", "down_proj")
PROJS = ("q_proj", "k_proj", "v_proj", "o_proj") + MLP
NODES = (8, 64, 512)
# InfiniBand HDR cluster: MPI latency per message incl. software, 200 Gb/s per node
IB_ALPHA = 2e-6          # s per message
IB_BW = 25e9            # bytes per s per node
IB_BETA = 1.0 / IB_BW   # s per byte

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--warmup", type=int, required=True)
ap.add_argument("--steps", type=int, required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--cores", type=int, required=True)
ap.add_argument("--json", action="store_true")
args = ap.parse_args()


def warn(msg):
    print("bench: " + msg, file=sys.stderr)


def read_cfg(path):
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"),
                                   strict=False)
    if not cp.read(path):
        raise OSError("cannot read " + path)
    return cp


def names(v):
    v = v.replace(" ", "").strip("'\"")
    if v.lower() in ("", "none"):
        return []
    return list(PROJS) if v.lower() == "all" else v.split(",")


def expert_counts(v, L):
    n = []
    for item in v.replace(" ", "").split(","):
        cnt, _, rep = item.partition("x")
        n += [int(cnt)] * (int(rep) if rep else 1)
    return n * L if len(n) == 1 else n


def sites_of(cp):
    """MoE sites: [{name, in, out, N, expert_trainables (one expert)}]."""
    g = lambda k: cp.getint("model", k)
    d, L, H, Hkv, dff = g("d_model"), g("n_layers"), g("n_heads"), g("n_kv_heads"), g("d_ff")
    hd = d // H
    r = cp.getint("lora", "r")
    full = cp.get("model", "mode").strip() == "full"
    shapes = {"q_proj": (d, H * hd), "k_proj": (d, Hkv * hd), "v_proj": (d, Hkv * hd),
              "o_proj": (H * hd, d), "gate_proj": (d, dff), "up_proj": (d, dff),
              "down_proj": (dff, d)}
    placement = cp.get("moe", "placement").strip()
    n_exp = expert_counts(cp.get("moe", "num_experts"), L)
    out = []
    for l in range(L):
        if placement == "plugin":
            for p in names(cp.get("moe", "targets")):
                i, o = shapes[p]
                grp = "mlp" if p in MLP else "self_attn"
                out.append({"name": "model.layers.%d.%s.%s" % (l, grp, p), "in": i, "out": o,
                            "N": n_exp[l], "train": r * (i + o)})
        elif placement in ("fused_mlp", "ffn"):
            edff = cp.getint("moe", "expert_d_ff", fallback=0) or dff
            tr = 3 * r * (d + dff) if placement == "fused_mlp" else (3 * d * edff if full else 0)
            out.append({"name": "model.layers.%d.mlp" % l, "in": d, "out": d, "N": n_exp[l],
                        "train": tr})
    return out


def metrics(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return sorted(rows, key=lambda x: x["step"])


def timed(rows):
    return [x for x in rows if x["step"] > args.warmup and x.get("time_ms")]


def medians(rows):
    t = timed(rows)
    if not t:
        return None
    return {p: statistics.median(x["time_ms"][p] for x in t) for p in PHASES}


def parse_log(path):
    txt = open(path, errors="replace").read()
    o = {"probe": None, "choices": {}, "trainable": None}
    m = re.search(r"alpha ([0-9.eE+-]+) us/message, beta ([0-9.eE+-]+) GB/s", txt)
    if m:
        o["probe"] = {"alpha_us": float(m.group(1)), "beta_gbs": float(m.group(2))}
    for m in re.finditer(r"^\s+(\S+)\s+alltoall\s+[0-9.]+ ms\s+replicate\s+[0-9.]+ ms\s+-> (\w+)",
                         txt, re.M):
        o["choices"][m.group(1)] = m.group(2)
    m = re.search(r"(\d+) trainable / (\d+) frozen", txt)
    if m:
        o["trainable"] = int(m.group(1))
    return o


def t_ar(n, nbytes, alpha, beta):
    """Ring/tree all-reduce of nbytes over n nodes (see the module docstring)."""
    if n <= 1:
        return 0.0
    return 2 * math.ceil(math.log2(n)) * alpha + 2 * (n - 1) / n * nbytes * beta


def t_a2a(model, ep, tok, alpha, beta):
    """Token exchange per step (s) at ep ranks, tok tokens per rank."""
    Ff, Fb, f, t = model["_F_fwd"], 1, (ep - 1) / ep, 0.0
    if ep > 1:
        for s in model["_sites"]:
            rows = tok * s["e"]
            t += (3 * Ff + 2 * Fb) * (ep - 1) * alpha + \
                (Ff + Fb) * beta * rows * (s["in"] + s["out"]) * 4 * f
    return t


def project(model, alpha, beta):
    """Projected per-step times (ms) at NODES for one model (module docstring)."""
    out = []
    sites, tok = model["_sites"], model["_tokens_per_rank"]
    nmax = max(s["N"] for s in sites)
    for n in NODES:
        ep = max(e for e in range(1, min(n, nmax) + 1) if n % e == 0)
        dp = n // ep
        a2a = t_a2a(model, ep, tok, alpha, beta)
        exp_rank = sum(-(-s["N"] // ep) * s["train"] for s in sites)
        ar = t_ar(n, 4 * model["_dense"], alpha, beta) + t_ar(dp, 4 * exp_rank, alpha, beta)
        comp = model["_compute_ms"] / 1e3
        step = comp + a2a + ar
        out.append({"nodes": n, "ep": ep, "dp": dp, "compute_ms": comp * 1e3, "a2a_ms": a2a * 1e3,
                    "allreduce_ms": ar * 1e3, "step_ms": step * 1e3, "a2a_share": a2a / step})
    return out


# ---- read the runs
models, order, failed = {}, [], False
for line in open(args.dir + "/runs"):
    mname, cfg, variant, np_, ep, disp, ch, status = line.split()
    if mname not in models:
        models[mname] = {"name": mname, "config": cfg, "runs": []}
        order.append(mname)
    run = {"variant": variant, "np": int(np_), "ep": int(ep), "dispatch": disp,
           "a2a_chunks": int(ch), "time_ms": None, "comm_share": None, "a2a_share": None,
           "probe": None, "auto_choice": None}
    rd = "%s/%s/%s" % (args.dir, mname, variant)
    try:
        if status != "ok":
            raise ValueError("run failed")
        rows = metrics(rd + "/metrics.jsonl")
        tm = medians(rows)
        if tm is None:
            raise ValueError("no timed steps in metrics.jsonl")
        lg = parse_log(rd + "/molt.log")
        run.update(time_ms=tm, probe=lg["probe"],
                   comm_share=(tm["a2a"] + tm["reduce"]) / tm["step"] if tm["step"] > 0 else None,
                   a2a_share=tm["a2a"] / tm["step"] if tm["step"] > 0 else None)
        if disp == "auto" and lg["choices"]:
            ch_ = list(lg["choices"].values())
            run["auto_choice"] = {"replicate": ch_.count("replicate"),
                                  "alltoall": ch_.count("alltoall")}
        if int(np_) == 1:  # the single-rank reference feeds the projection
            m = models[mname]
            cp = read_cfg(rd + "/config.ini")
            m["_cp"], m["_rows"], m["_trainable"] = cp, rows, lg["trainable"]
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        warn("%s %s: %s" % (mname, variant, e))
        failed = True
    models[mname]["runs"].append(run)

# ---- per-model projection inputs from the np=1 run
probes = [r["probe"] for m in models.values() for r in m["runs"] if r["probe"]]
machine = None
if probes:
    machine = {"alpha_us": statistics.median(p["alpha_us"] for p in probes),
               "beta_gbs": statistics.median(p["beta_gbs"] for p in probes),
               "probes": len(probes)}
for m in models.values():
    m["projection"] = None
    if "_cp" not in m:
        continue
    cp = m["_cp"]
    sites = sites_of(cp)
    router = cp.get("moe", "router").strip()
    k = cp.getint("moe", "top_k")
    # measured experts_per_token of each site, mean over the np=1 run's timed steps
    meas = {}
    for x in timed(m["_rows"]):
        for e in x.get("moe") or []:
            meas.setdefault(e["site"], []).append(e["experts_per_token"])
    for s in sites:
        if router in ("topk", "expert_choice"):
            s["e"], s["e_from"] = float(min(k, s["N"])), "top_k"
        elif router == "switch":
            s["e"], s["e_from"] = 1.0, "switch"
        elif router == "soft":
            s["e"], s["e_from"] = float(s["N"]), "soft"
        elif s["name"] in meas:
            s["e"], s["e_from"] = statistics.mean(meas[s["name"]]), "measured"
        else:
            raise SystemExit("bench: %s: no experts_per_token for site %s" % (m["name"], s["name"]))
    aux = [a for a in names(cp.get("moe", "aux")) if a]
    expert_total = sum(s["N"] * s["train"] for s in sites)
    trainable = m["_trainable"]
    dense_note = None
    if trainable is None or trainable < expert_total:
        dense_note = "dense/expert split unknown: all trainables treated as dense"
        dense, expert_total = trainable or expert_total, 0
        for s in sites:
            s["train"] = 0
    else:
        dense = trainable - expert_total
    tm = [x["time_ms"] for x in timed(m["_rows"])]
    m.update(_sites=sites, _dense=dense, _F_fwd=2 if aux else 1,
             _tokens_per_rank=cp.getint("train", "batch_size") * cp.getint("train", "seq_len"),
             _compute_ms=statistics.median(t["step"] - t["a2a"] - t["reduce"] for t in tm))
    m["inputs"] = {
        "placement": cp.get("moe", "placement").strip(), "router": router,
        "tokens_per_rank": m["_tokens_per_rank"], "compute_ms": m["_compute_ms"],
        "F_fwd": m["_F_fwd"], "F_bwd": 1, "trainable": trainable, "dense_trainable": dense,
        "expert_trainable": expert_total, "note": dense_note,
        "sites": [{"name": s["name"], "in": s["in"], "out": s["out"], "experts": s["N"],
                   "experts_per_token": s["e"], "from": s["e_from"]} for s in sites]}
    m["projection"] = {"ib_hdr": project(m, IB_ALPHA, IB_BETA)}
    if machine:
        a, b = machine["alpha_us"] * 1e-6, 1e-9 / machine["beta_gbs"]
        m["projection"]["machine"] = project(m, a, b)
        # the same model at the measured layout (np 4 = ep 4, the global batch
        # split over 4 ranks), to set against the alltoall-c1 run's a2a
        r4 = [r for r in m["runs"] if r["np"] > 1]
        if r4:
            P = r4[0]["ep"]
            meas_a2a = next((r["time_ms"]["a2a"] for r in m["runs"]
                             if r["variant"] == "alltoall-c1" and r["time_ms"]), None)
            m["inputs"]["check"] = {"ep": P, "model_a2a_ms": 1e3 * t_a2a(
                m, P, m["_tokens_per_rank"] / r4[0]["np"], a, b), "measured_a2a_ms": meas_a2a}

network = {"ib_hdr": {"alpha_us": IB_ALPHA * 1e6, "beta_gbs": IB_BW / 1e9},
           "machine": machine}

if args.json:
    out = {"mode": "ep", "threads": args.threads, "cores": args.cores, "warmup": args.warmup,
           "steps": args.steps, "network": network,
           "models": [{k: v for k, v in models[n].items() if not k.startswith("_")}
                      for n in order]}
    print(json.dumps(out))
    sys.exit(1 if failed else 0)

f = lambda v, fmt: (fmt % v) if v is not None else "-"
print("molt expert-parallel benchmark: np 4 = dp 1 x ep 4 on %d cores (oversubscribed:"
      " read numbers as relative), %d thread%s per rank" % (args.cores, args.threads,
                                                            "" if args.threads == 1 else "s"))
print("per phase: median over %d timed steps (after %d warm-up) of rank 0's time_ms; "
      "comm = (a2a + reduce) / step" % (args.steps, args.warmup))
for n in order:
    m = models[n]
    cp = m.get("_cp")
    head = "%s (%s" % (n, m["config"])
    if cp is not None:
        s0 = m["_sites"]
        head += ": %s, %d sites x %d experts, router %s; batch %d x seq %d" % (
            cp.get("moe", "placement").strip(), len(s0), max(s["N"] for s in s0),
            cp.get("moe", "router").strip(), cp.getint("train", "batch_size"),
            cp.getint("train", "seq_len"))
    print()
    print(head + ")")
    print("%-13s %8s %8s %8s %8s %8s %8s %8s %6s %9s" % ("variant", "route", "a2a", "expert",
                                                       "combine", "reduce", "other", "step ms",
                                                       "comm", "a2a/step"))
    for r in m["runs"]:
        t = r["time_ms"] or {}
        label = "np1 (ep 1)" if r["np"] == 1 else r["variant"]
        print("%-13s %s %6s %9s" % (
            label, " ".join("%8s" % f(t.get(p), "%.1f") for p in PHASES),
            f(r["comm_share"] and 100 * r["comm_share"], "%.0f%%"),
            f(r["a2a_share"] and 100 * r["a2a_share"], "%.0f%%")))
    for r in m["runs"]:
        if r["dispatch"] == "auto":
            c, p = r["auto_choice"], r["probe"]
            print("  %s chose: %s (probe: alpha %s us/message, beta %s GB/s)" % (
                r["variant"],
                "%d site(s) replicate, %d alltoall" % (c["replicate"], c["alltoall"]) if c else "-",
                f(p and p["alpha_us"], "%.1f"), f(p and p["beta_gbs"], "%.2f")))

print()
print("cost-model projection, dispatch alltoall (formula: launch/bench --help): one rank per node,")
print("per-rank batch and compute/step of the np=1 run, ep = largest divisor of nodes <= experts/site")
for key, title in (("ib_hdr", "InfiniBand HDR: alpha %.1f us/message, %.0f GB/s per node"
                    % (IB_ALPHA * 1e6, IB_BW / 1e9)),
                   ("machine", "this machine's probe (median of %d auto runs): alpha %s us/message,"
                    " %s GB/s" % (machine["probes"], f(machine["alpha_us"], "%.1f"),
                                  f(machine["beta_gbs"], "%.2f")) if machine else None)):
    if title is None:
        print("\n(no auto run printed a probe line: no projection with this machine's alpha/beta)")
        continue
    print()
    print("projection with " + title)
    print("%-9s %6s %4s %4s %11s %9s %13s %9s %10s" % ("model", "nodes", "ep", "dp", "compute ms",
                                                     "a2a ms", "allreduce ms", "step ms",
                                                     "a2a share"))
    for n in order:
        pr = models[n]["projection"]
        if not pr or key not in pr:
            print("%-9s (np=1 run missing)" % n)
            continue
        for p in pr[key]:
            print("%-9s %6d %4d %4d %11.1f %9.2f %13.3f %9.1f %9.1f%%" % (
                n, p["nodes"], p["ep"], p["dp"], p["compute_ms"], p["a2a_ms"], p["allreduce_ms"],
                p["step_ms"], 100 * p["a2a_share"]))
print()
for n in order:
    i = models[n].get("inputs")
    if not i:
        continue
    ev = [s["experts_per_token"] for s in i["sites"]]
    src = sorted({s["from"] for s in i["sites"]})
    print("%s inputs: %d tokens/rank, compute %.1f ms/step, F_fwd %d F_bwd 1, trainables %s "
          "dense + %d expert (%s); experts/token %s" % (
              n, i["tokens_per_rank"], i["compute_ms"], i["F_fwd"], f(i["dense_trainable"], "%d"),
              i["expert_trainable"], "from molt's count and the config" if not i["note"]
              else i["note"], "%.2f (%s)" % (ev[0], src[0]) if min(ev) == max(ev) else
              "%.2f-%.2f, mean %.2f over sites (%s)" % (min(ev), max(ev), sum(ev) / len(ev),
                                                         "/".join(src))))
    c = i.get("check")
    if c:
        print("%s check: cost model at the measured layout (ep %d, this machine's alpha/beta) "
              "a2a %.1f ms/step; measured alltoall-c1 %s ms (includes waiting for "
              "oversubscribed peers)" % (n, c["ep"], c["model_a2a_ms"],
                                         f(c["measured_a2a_ms"], "%.1f")))
sys.exit(1 if failed else 0)

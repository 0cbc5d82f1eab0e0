#!/usr/bin/python3
"""Table of `launch/bench --ckpt` (see its --help): molt's checkpoint write and
read bandwidth against dd on the same filesystem, same byte count.

usage: ckpt_bench.py DIR [--json]

DIR/meta holds `key value...` lines written by launch/bench:
    fs TYPE DEVICE MOUNT     (df -T of the scratch directory)
    scratch PATH
    cold 0|1                 (1: every drop_caches before a read succeeded)
    startup SECONDS          (wall time of `molt ckpt --help`: MPI_Init etc.)
    rounds R
    load_start L1 L5 L15     (/proc/loadavg at start; load_end at the end)
    threads NP T             (per rank, per np)
DIR/np<N>/r<R>/ holds one round at N ranks:
    status          ok | failed
    train.log       `molt train` (rank 0): `molt: checkpoint step S -> PATH
                    (X MB in T s, B MB/s)` once per step (checkpoint.every=1)
    sizes           `PATH BYTES` of every step file after training (stat)
    resume.log      `molt train --resume PATH`: `... (read in T s)`
    verify.log      `molt ckpt verify PATH`: `N datasets (X MB) read, checksums OK`
    verify.time     wall seconds of that process
    ddw1.log ddw2.log ddr.log  dd's stderr (LC_ALL=C): `B bytes (...) copied, T s, ...`

Per np, best (highest) bandwidth over the saves / rounds (the machine is
shared; other load only slows a run). MB = 1e6 bytes. Bytes = the file's size
on disk (what molt's own MB/s uses); the payload (dataset bytes, from verify)
is reported beside it.
"""
import argparse
import json
import os
import re
import sys

TARGET = 0.70

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--json", action="store_true")
args = ap.parse_args()


def warn(msg):
    print("bench: " + msg, file=sys.stderr)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


meta = {}
for line in (read(os.path.join(args.dir, "meta")) or "").splitlines():
    k, _, v = line.partition(" ")
    if k == "threads":
        n, t = v.split()
        meta.setdefault("threads", {})[int(n)] = int(t)
    else:
        meta[k] = v.strip()
startup = float(meta.get("startup", "0") or 0)
cold = meta.get("cold") == "1"

RE_SAVE = re.compile(r"^molt: checkpoint step (\d+) -> (\S+) \(([\d.]+) MB in ([\d.]+) s, ([\d.]+) MB/s\)",
                     re.M)
RE_READ = re.compile(r"^molt: resumed from (\S+) at step (\d+) \(read in ([\d.]+) s\)", re.M)
RE_VERIFY = re.compile(r"(\d+) datasets \(([\d.]+) MB\) read, checksums OK")
RE_DD = re.compile(r"^(\d+) bytes .* copied, ([\d.e+-]+) s", re.M)


def dd(path):
    m = RE_DD.search(read(path) or "")
    if not m or float(m.group(2)) <= 0:
        return None
    return int(m.group(1)), float(m.group(2))


def best(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def ratio(a, b):
    return a / b if (a is not None and b) else None


rows = []
nps = sorted(int(d[2:]) for d in os.listdir(args.dir) if re.fullmatch(r"np\d+", d))
for n in nps:
    base = os.path.join(args.dir, "np%d" % n)
    rounds = sorted(d for d in os.listdir(base) if re.fullmatch(r"r\d+", d))
    w, r, v, dw, dr = [], [], [], [], []
    saves, nbytes, payload, datasets, ok = [], None, None, None, True
    for rd in rounds:
        p = os.path.join(base, rd)
        if (read(os.path.join(p, "status")) or "").strip() != "ok":
            ok = False
        sizes = {}
        for line in (read(os.path.join(p, "sizes")) or "").splitlines():
            path, _, b = line.rpartition(" ")
            sizes[os.path.basename(path)] = int(b)
        for m in RE_SAVE.finditer(read(os.path.join(p, "train.log")) or ""):
            step, path, mb, sec = int(m.group(1)), m.group(2), float(m.group(3)), float(m.group(4))
            b = sizes.get(os.path.basename(path), mb * 1e6)
            nbytes = nbytes or b
            saves.append({"round": int(rd[1:]), "step": step, "bytes": b, "s": sec})
            if sec > 0:
                w.append(b / 1e6 / sec)
        m = RE_READ.search(read(os.path.join(p, "resume.log")) or "")
        if m and nbytes and float(m.group(3)) > 0:
            b = sizes.get(os.path.basename(m.group(1)), nbytes)
            r.append(b / 1e6 / float(m.group(3)))
        m = RE_VERIFY.search(read(os.path.join(p, "verify.log")) or "")
        vt = read(os.path.join(p, "verify.time"))
        if m and vt and nbytes:
            datasets, payload = int(m.group(1)), float(m.group(2)) * 1e6
            sec = float(vt) - startup
            if sec > 0:
                v.append(nbytes / 1e6 / sec)
        for lst, pat in ((dw, r"ddw\d*\.log"), (dr, r"ddr\d*\.log")):
            for f in sorted(os.listdir(p)):
                x = dd(os.path.join(p, f)) if re.fullmatch(pat, f) else None
                if x:
                    lst.append(x[0] / 1e6 / x[1])
    row = {"np": n, "threads": meta.get("threads", {}).get(n), "bytes": nbytes,
           "payload_bytes": payload, "datasets": datasets,
           "write_mbs": best(w), "dd_write_mbs": best(dw), "read_mbs": best(r),
           "verify_mbs": best(v), "dd_read_mbs": best(dr), "saves": saves, "ok": ok}
    row["write_ratio"] = ratio(row["write_mbs"], row["dd_write_mbs"])
    row["read_ratio"] = ratio(row["read_mbs"], row["dd_read_mbs"])
    row["verify_ratio"] = ratio(row["verify_mbs"], row["dd_read_mbs"])
    rows.append(row)

fs = (meta.get("fs") or "? ? ?").split()
if args.json:
    print(json.dumps({"mode": "ckpt", "filesystem": fs[0], "device": fs[1] if len(fs) > 1 else None,
                      "scratch": meta.get("scratch"), "cold_reads": cold,
                      "rounds": int(meta.get("rounds", "1")), "startup_s": startup,
                      "load": {"start": meta.get("load_start"), "end": meta.get("load_end")},
                      "target": TARGET, "rows": rows}))
    sys.exit(0)

f = lambda x, fmt: (fmt % x) if x is not None else "-"
print("molt checkpoint bandwidth: tests/bench/configs/medium.ini, full (weights + AdamW m, v),"
      " seq 64; scratch %s on %s (%s)" % (meta.get("scratch", "?"), fs[0], fs[1] if len(fs) > 1 else "?"))
print("reads %s; MB = 1e6 B; best of %s round(s) (molt write: of 2 saves per round)"
      % ("after drop_caches (cold page cache)" if cold else
         "CACHE-WARM (drop_caches failed: read figures are page-cache copies)",
         meta.get("rounds", "1")))
print("load average (1, 5, 15 min) at start %s, at end %s on %s cores"
      % (meta.get("load_start", "?"), meta.get("load_end", "?"), os.cpu_count()))
hdr = ("np", "bytes", "write", "dd write", "ratio", "read", "verify", "dd read", "ratio")
print("%3s %11s %9s %9s %6s %9s %9s %9s %6s" % hdr)
print("%3s %11s %9s %9s %6s %9s %9s %9s %6s" % ("", "", "MB/s", "MB/s", "", "(resume)", "MB/s",
                                                "MB/s", ""))
for x in rows:
    print("%3d %11s %9s %9s %6s %9s %9s %9s %6s" % (
        x["np"], f(x["bytes"], "%.0f"), f(x["write_mbs"], "%.1f"), f(x["dd_write_mbs"], "%.1f"),
        f(x["write_ratio"], "%.2f"), f(x["read_mbs"], "%.1f"), f(x["verify_mbs"], "%.1f"),
        f(x["dd_read_mbs"], "%.1f"), f(x["read_ratio"], "%.2f")))
for x in rows:
    if x["payload_bytes"] and x["bytes"]:
        print("np %d: %s datasets, payload %.1f MB in a %.1f MB file (%.1f%% overhead); saves %s"
              % (x["np"], x["datasets"], x["payload_bytes"] / 1e6, x["bytes"] / 1e6,
                 100 * (x["bytes"] / x["payload_bytes"] - 1),
                 ", ".join("%.2f s" % s["s"] for s in x["saves"])))
print("write = file bytes / molt's save time (create .. fsync, rename, latest, prune); read = file"
      " bytes / resume's read time (at np > 1 every rank of the dp replica reads all of its dense"
      " tensors); verify = file bytes / (wall - %.2f s process start-up) of `molt ckpt verify`"
      % startup)
print("targets (>= %d%% of dd):" % round(100 * TARGET))
for x in rows:
    for k, what in (("write_ratio", "write"), ("read_ratio", "read (resume)")):
        st = "met" if x[k] is not None and x[k] >= TARGET else "missed"
        print("  np %-2d %-14s: %-6s (%s)" % (x["np"], what, st, f(x[k] and 100 * x[k], "%.0f%%")))
sys.exit(0 if all(x["ok"] for x in rows) else 1)

"""st_numpy.py — a numpy-only safetensors reader and writer (F32, F16, BF16):
the independent reference molt's `import` and `export` are tested against
(tests/cli/import_export.sh). No safetensors or torch package is used.

Format: u64 little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
then the data section (offsets relative to its start), little-endian values.

    write(path, {name: (dtype, array)}, metadata={"format": "pt"})
        dtype "F32", "F16" or "BF16"; arrays are rounded to the dtype here:
        F16 by numpy's IEEE round-to-nearest-even, BF16 by rounding the f32
        bits to nearest even (f32_to_bf16_bits).
    write_sharded(dir, {name: (dtype, array)}, n_shards, metadata)
        model-0000k-of-0000n.safetensors + model.safetensors.index.json
    read(path) -> ({name: float32 array}, {name: dtype}, metadata)
    as_dtype_f32(dtype, array) -> the exact float32 value of each element
        after rounding to dtype (what a correct reader must produce)
    raw_file(path, header_bytes, data_bytes, length=None)
        a file with an arbitrary header (for malformed-header tests)
"""
import json
import os

import numpy as np

SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def f32_to_bf16_bits(x):
    """uint16 bfloat16 bits of float32 x, rounded to nearest even; NaN stays NaN."""
    b = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    rounded = np.where(nan, (b >> 16) | 0x40, rounded)
    return rounded.astype("<u2")


def bf16_bits_to_f32(u):
    return (np.asarray(u, dtype="<u2").astype("<u4") << 16).view("<f4")


def encode(dtype, a):
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        with np.errstate(over="ignore"):  # beyond 65504 rounds to inf, as IEEE says
            return a.astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(a).tobytes()
    raise ValueError(dtype)


def decode(dtype, raw, shape):
    if dtype == "F32":
        v = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        v = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        v = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
    else:
        raise ValueError("st_numpy reads F32, F16, BF16; got %s" % dtype)
    return v.astype(np.float32).reshape(shape)


def as_dtype_f32(dtype, a):
    a = np.asarray(a, dtype=np.float32)
    return decode(dtype, encode(dtype, a), a.shape)


def header_bytes(entries, metadata):
    """entries: [(name, dtype, shape, nbytes)] in data order -> padded header."""
    h, at = {}, 0
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, dtype, shape, nbytes in entries:
        h[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + nbytes]}
        at += nbytes
    text = json.dumps(h, separators=(",", ":")).encode()
    return text + b" " * (-(len(text) + 8) % 8)


def write(path, tensors, metadata=None):
    if metadata is None:
        metadata = {"format": "pt"}
    blobs, entries = [], []
    for name, (dtype, a) in tensors.items():
        raw = encode(dtype, a)
        entries.append((name, dtype, np.shape(a), len(raw)))
        blobs.append(raw)
    raw_file(path, header_bytes(entries, metadata), b"".join(blobs))


def write_sharded(dirname, tensors, n_shards, metadata=None):
    names = list(tensors)
    weight_map, total = {}, 0
    for k in range(n_shards):
        part = names[k::n_shards]
        fname = "model-%05d-of-%05d.safetensors" % (k + 1, n_shards)
        write(os.path.join(dirname, fname), {n: tensors[n] for n in part}, metadata)
        for n in part:
            weight_map[n] = fname
            total += len(encode(*tensors[n]))
    with open(os.path.join(dirname, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def raw_file(path, header, data, length=None):
    with open(path, "wb") as f:
        n = len(header) if length is None else length
        f.write(int(n).to_bytes(8, "little"))
        f.write(header)
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    assert 8 + n <= len(blob), "%s: header runs past the file" % path
    h = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = h.pop("__metadata__", None)
    data = blob[8 + n:]
    out, dtypes = {}, {}
    for name, t in h.items():
        b, e = t["data_offsets"]
        assert 0 <= b <= e <= len(data), "%s: %s offsets" % (path, name)
        shape = tuple(t["shape"])
        assert int(np.prod(shape, dtype=np.int64)) * SIZES[t["dtype"]] == e - b, name
        out[name] = decode(t["dtype"], data[b:e], shape)
        dtypes[name] = t["dtype"]
    return out, dtypes, meta

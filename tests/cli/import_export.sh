#!/usr/bin/env bash
# Safetensors interchange (DESIGN §8), against the numpy-only reference
# tests/ref/st_numpy.py and h5py:
#  1. `molt import` of a tiny LLaMA (d 32, 2 layers, GQA 4/2 heads, vocab 300)
#     as F32 (one file), F16 (named file, tied, an extra tensor to skip) and
#     BF16 (3 shards + model.safetensors.index.json): F32 bit for bit, F16 and
#     BF16 equal to the exact float32 value of each half/bfloat16 (subnormals,
#     ties to even, +-0, inf and NaN included); root attrs, BASE.ini.
#  2. a peft run (2 steps) from the imported BF16 base: its final.h5 holds
#     that base bit for bit.
#  3. `molt export` of that LoRA run (adapters; --merged = W + (alpha/r) B A,
#     re-imported bit for bit), of a plugin MoE run (expert LoRA, routers,
#     shared LoRA, trained norms) and of a full-mode ffn/factor run (FFN
#     experts, router bias, the trained base): names and values checked
#     against h5py; --merged of the MoE run refused.
#  4. malformed files, each exit 2 naming the file and the problem: header
#     length too big, offsets past the end, overlap, unknown dtype, shape/size
#     mismatch, not JSON, truncated; a missing, a mis-shaped and an I32 tensor.
# Each molt start costs seconds under ASan + MPI, so the checks share runs, and
# LeakSanitizer's exit-time walk of Open MPI's heap (most of that cost) stays
# on for two runs only: the sharded import and the MoE export. The rest run
# with detect_leaks=0: tests/unit/test_safetensors.c drives every header error
# and molt_cmd_import / molt_cmd_export (good, missing tensor, truncated,
# MoE, merged, refused) leak-checked in one process, and the trainings are
# other modules' code, leak-checked by their own tests.
source "$MOLT_SRC/tests/cli/lib.bash"
noleak() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"; }
export PYTHONPATH="$MOLT_SRC/tests/ref${PYTHONPATH:+:$PYTHONPATH}"
tiny="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"

# ---- 1. three checkpoints, and malformed files ---------------------------
"$MOLT_PYTHON" - <<'PY' || fail "making the safetensors files"
import json, os
import numpy as np
import st_numpy as st

rng = np.random.default_rng(5)
V, d, L, H, KV, F = 300, 32, 2, 4, 2, 64
hd = d // H

def model(tied):
    t = {"model.embed_tokens.weight": rng.normal(0, 0.05, (V, d))}
    for l in range(L):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        t[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        for n, shape in (("q", (H * hd, d)), ("k", (KV * hd, d)), ("v", (KV * hd, d)),
                         ("o", (d, H * hd))):
            t[p + "self_attn.%s_proj.weight" % n] = rng.normal(0, 0.05, shape)
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.05, (F, d))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.05, (F, d))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.05, (d, F))
    t["model.norm.weight"] = 1 + rng.normal(0, 0.1, d)
    if not tied:
        t["lm_head.weight"] = rng.normal(0, 0.05, (V, d))
    return {k: np.asarray(v, np.float32) for k, v in t.items()}

def config(tied):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
            "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV,
            "intermediate_size": F, "vocab_size": V, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": tied,
            "hidden_act": "silu", "torch_dtype": "float32"}

# Values where a conversion can go wrong.
f16_edge = np.array([2**-24, 3 * 2**-24, 2**-14 - 2**-24, 2**-14, 65504, -0.0, 1 + 2**-11,
                     1 + 3 * 2**-11, 1e-9, np.inf, -np.inf, np.nan, -2.5, 70000], np.float32)
bf16_edge = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1e-40, -1e-41, 3.0e38, -0.0, 1 + 2**-7,
                      0.1, -0.3], np.float32)
expected = {}
for dtype, tied, where in (("F32", False, "f32"), ("F16", True, "f16"), ("BF16", False, "bf16")):
    os.makedirs(where)
    t = model(tied)
    e = t["model.embed_tokens.weight"].reshape(-1)
    if dtype == "F16": e[:f16_edge.size] = f16_edge
    if dtype == "BF16": e[:bf16_edge.size] = bf16_edge
    for k, v in t.items():
        expected["%s/%s" % (where, k)] = st.as_dtype_f32(dtype, v)
    tensors = {k: (dtype, v) for k, v in t.items()}
    if dtype == "F16":  # a buffer HF checkpoints may carry: skipped
        tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = ("F32", np.ones(hd // 2))
    if dtype == "BF16":
        st.write_sharded(where, tensors, 3)
    else:
        st.write(where + "/model.safetensors", tensors)
    json.dump(config(tied), open(where + "/config.json", "w"), indent=1)
# the F16 edge values really are edge cases of the conversion
x = expected["f16/model.embed_tokens.weight"].reshape(-1)[:f16_edge.size]
assert x[0] == 2**-24 and x[6] == 1.0 and x[7] == 1 + 2**-9 and x[8] == 0 and x[13] == np.inf
y = expected["bf16/model.embed_tokens.weight"].reshape(-1)[:bf16_edge.size]
assert y[0] == 1.0 and y[1] == 1 + 2**-6 and 0 < y[2] < 2**-126
np.savez("expected.npz", **expected)

# malformed files: (name, header bytes, data bytes, header length field)
os.makedirs("bad")
good = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
def hdr(h): return json.dumps(h).encode()
cases = [
    ("huge", hdr({"a": good}), bytes(16), 1 << 40),
    ("past_end", hdr({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 32]}}),
     bytes(16), None),
    ("overlap", hdr({"a": good, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}),
     bytes(16), None),
    ("dtype", hdr({"a": {"dtype": "F33", "shape": [2, 2], "data_offsets": [0, 16]}}),
     bytes(16), None),
    ("size", hdr({"a": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}),
     bytes(16), None),
    ("notjson", b'{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}', bytes(16),
     None),
]
for name, h, data, n in cases:
    st.raw_file("bad/%s.safetensors" % name, h, data, n)
blob = open("f32/model.safetensors", "rb").read()
open("bad/truncated.safetensors", "wb").write(blob[:len(blob) - 1000])
# whole checkpoints with one tensor wrong
t = model(False)
for name, change in (("missing", lambda t: t.pop("model.layers.1.self_attn.v_proj.weight")),
                     ("shape", lambda t: t.update({"model.layers.1.mlp.up_proj.weight":
                                                   np.zeros((F, d + 1), np.float32)}))):
    os.makedirs(name)
    u = dict(t)
    change(u)
    st.write(name + "/model.safetensors", {k: ("F32", v) for k, v in u.items()})
    json.dump(config(False), open(name + "/config.json", "w"))
# an integer tensor where a weight belongs: a valid file molt cannot import
os.makedirs("int")
st.write("int/model.safetensors", {k: ("F32", v) for k, v in t.items()})
b = open("int/model.safetensors", "rb").read()
n = int.from_bytes(b[:8], "little")
h = json.loads(b[8:8 + n])
h["model.norm.weight"]["dtype"] = "I32"
st.raw_file("int/model.safetensors", json.dumps(h).encode(), b[8 + n:])
json.dump(config(False), open("int/config.json", "w"))
PY

run "import F32" 0 noleak "$MOLT_BIN" import f32 --out f32.h5
run "import F16 by file name" 0 noleak "$MOLT_BIN" import f16/model.safetensors --out f16.h5
grep -q "skipped tensor model.layers.0.self_attn.rotary_emb.inv_freq" out.txt || fail "F16: skip note"
run "import BF16 shards" 0 "$MOLT_BIN" import bf16 --out bf16.h5
grep -q "from 3 files" out.txt || fail "BF16: 3 shards"

"$MOLT_PYTHON" - <<'PY' || fail "imported values"
import h5py, numpy as np
exp = np.load("expected.npz")
for where, tied in (("f32", False), ("f16", True), ("bf16", False)):
    with h5py.File(where + ".h5", "r") as f:
        s = lambda v: v.decode() if isinstance(v, bytes) else v
        assert s(f.attrs["format"]) == "molt-ckpt" and f.attrs["version"] == 1, where
        assert f.attrs["step"] == 0, where
        cfg = s(f.attrs["config"])
        for line in ("mode = peft", "vocab_size = 300", "d_model = 32", "n_layers = 2",
                     "n_heads = 4", "n_kv_heads = 2", "d_ff = 64", "max_seq_len = 64",
                     "norm_eps = 1e-05", "tie_embeddings = %s" % str(tied).lower()):
            assert line in cfg.splitlines(), (where, line)
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        want = sorted("base/" + k.split("/", 1)[1] for k in exp.files if k.startswith(where + "/"))
        assert sorted(names) == want, (where, sorted(set(names) ^ set(want)))
        for n in names:
            a, e = f[n][()], exp[where + "/" + n[5:]]
            assert a.dtype == np.float32 and a.shape == e.shape, n
            assert np.array_equal(a.view(np.uint32), e.view(np.uint32)), (where, n)
    ini = open(where + ".ini").read()
    assert "[model]\nmode = peft\n" in ini and "init_from = /" in ini and "\n[lora]" not in ini, ini
print("imports: F32 bit for bit; F16 and BF16 equal to the exact value of each element")
PY

# ---- 2. fine-tune from the imported base --------------------------------
run "train from the BF16 base" 0 noleak "$MOLT_BIN" train bf16.ini --set lora.targets=q_proj,v_proj,down_proj \
  --set lora.alpha=24 --set lora.r=4 --set train.steps=2 --set train.batch_size=2 \
  --set train.seq_len=16 --set train.lr=0.01 --set eval.samples=2 --set log.every=1 \
  --set log.run_dir="$work/lora"
run "train a plugin MoE" 0 noleak "$MOLT_BIN" train "$tiny" --set model.mode=peft --set lora.train_norms=true \
  --set lora.targets=q_proj,o_proj --set moe.placement=plugin --set moe.num_experts=3 \
  --set moe.targets=up_proj,down_proj --set moe.router=dynmole --set moe.aux=dynmole,zloss \
  --set log.run_dir="$work/moe"
run "train ffn experts (full)" 0 noleak "$MOLT_BIN" train "$tiny" --set moe.placement=ffn \
  --set moe.router=factor --set moe.num_experts=2 --set log.run_dir="$work/ffn"

# ---- 3. export ------------------------------------------------------------
run "export LoRA" 0 noleak "$MOLT_BIN" export lora/final.h5 --out x_lora
run "export LoRA merged" 0 noleak "$MOLT_BIN" export lora/final.h5 --out x_merged --merged
run "export MoE" 0 "$MOLT_BIN" export moe/final.h5 --out x_moe
run "export ffn" 0 noleak "$MOLT_BIN" export ffn/final.h5 --out x_ffn
run "re-import the merged model" 0 noleak "$MOLT_BIN" import x_merged --out merged.h5
expect "merged MoE refused" 2 "moe/final.h5: --merged needs a run without experts" \
  "moe.placement = plugin" -- noleak "$MOLT_BIN" export moe/final.h5 --out x_bad --merged
[ ! -e x_bad/model.safetensors ] || fail "refused export wrote a file"

"$MOLT_PYTHON" - <<'PY' || fail "exported files"
import json, re
import h5py, numpy as np
import st_numpy as st

def hf_name(path):
    """molt registry path -> PEFT-style name, written independently of molt."""
    kind, module, rest = path.split("/", 2)
    m = re.fullmatch(r"expert_(\d+)/(.*)", rest)
    e, leaf = (int(m.group(1)), m.group(2)) if m else (None, rest)
    pre = "base_model.model." + module
    if kind == "adapters" and e is None:
        return "%s.%s.weight" % (pre, leaf.split("/")[1])
    if kind == "adapters":
        return "%s.experts.%d.%s.weight" % (pre, e, leaf)
    if kind == "routers":
        return "%s.router.%s" % (pre, leaf)
    if kind == "experts":
        return "%s.experts.%d.%s" % (pre, e, leaf)
    raise ValueError(path)

def datasets(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out

def same(a, b):
    return a.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32),
                                                                           b.view(np.uint32))

def check_adapters(run, out, trained_base=()):
    with h5py.File(run + "/final.h5", "r") as f:
        ds = datasets(f)
    want = {hf_name(p): v for p, v in ds.items() if not p.startswith("base/")}
    for b in trained_base:
        want["base_model.model." + b] = ds["base/" + b]
    got, dtypes, meta = st.read(out + "/adapter_model.safetensors")
    assert meta == {"format": "pt"}, meta
    assert set(dtypes.values()) == {"F32"}, dtypes
    assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))
    for n in want:
        assert same(got[n], want[n]), n
    return ds, got, json.load(open(out + "/adapter_config.json")), json.load(open(out + "/molt_moe.json"))

# LoRA run: shared LoRA on q, v, down
ds, got, ac, mj = check_adapters("lora", "x_lora")
assert "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" in got
assert ac["peft_type"] == "LORA" and ac["r"] == 4 and ac["lora_alpha"] == 24 and ac["lora_dropout"] == 0
assert ac["target_modules"] == ["q_proj", "v_proj", "down_proj"], ac
assert mj["placement"] == "none" and mj["lora_targets"] == ["q_proj", "v_proj", "down_proj"], mj
# the fine-tune kept the imported base bit for bit (it loaded), and trained its LoRA
with h5py.File("bf16.h5", "r") as f:
    base = datasets(f)
for n, v in base.items():
    assert same(ds[n], v), n
assert np.abs(ds["adapters/model.layers.0.self_attn.q_proj/shared/lora_B"]).max() > 0

# merged: W + (alpha/r) B A in float64, then rounded; config.json
merged, dtypes, _ = st.read("x_merged/model.safetensors")
assert sorted(merged) == sorted(n[5:] for n in base), sorted(merged)
changed = 0
for n, w in base.items():
    mod = n[5:-len(".weight")]
    a = ds.get("adapters/%s/shared/lora_A" % mod)
    ref = w.astype(np.float64)
    if a is not None:
        ref = ref + 24 / 4 * ds["adapters/%s/shared/lora_B" % mod].astype(np.float64) @ a.astype(np.float64)
        changed += not same(merged[n[5:]], w)
    else:
        assert same(merged[n[5:]], w), n
    assert np.allclose(merged[n[5:]], ref, rtol=0, atol=1e-6 * np.abs(ref).max()), n
assert changed == 2 * 3, changed   # q, v, down of both layers moved off the base
cfg = json.load(open("x_merged/config.json"))
assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"], cfg
assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
        cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"],
        cfg["max_position_embeddings"], cfg["tie_word_embeddings"]) == (32, 2, 4, 2, 64, 300, 64, False), cfg
assert cfg["rms_norm_eps"] == 1e-5 and cfg["rope_theta"] == 10000, cfg
with h5py.File("merged.h5", "r") as f:
    back = datasets(f)
assert sorted(back) == sorted("base/" + n for n in merged)
for n, v in merged.items():
    assert same(back["base/" + n], v), n

# plugin MoE: expert LoRA on up/down, routers, shared LoRA on q and o, trained norms
norms = ["model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
         "model.norm.weight"]
ds, got, ac, mj = check_adapters("moe", "x_moe", norms)
for n in ("base_model.model.model.layers.0.mlp.up_proj.experts.2.lora_A.weight",
          "base_model.model.model.layers.0.mlp.down_proj.router.weight",
          "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
          "base_model.model.model.norm.weight"):
    assert n in got, n
assert "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight" not in got
assert ac["target_modules"] == ["q_proj", "o_proj", "up_proj", "down_proj"], ac
assert (mj["placement"], mj["router"], mj["num_experts"], mj["targets"], mj["lora_targets"]) == \
    ("plugin", "dynmole", [3], ["up_proj", "down_proj"], ["q_proj", "o_proj"]), mj
assert mj["top_p"] == 0.75 and set(mj["aux"]) == {"dynmole", "dynmole_balance", "zloss"}, mj
assert sorted(mj["trained_base"]) == sorted("base_model.model." + n for n in norms), mj
assert "expert_lora" in mj["tensor_names"] and "[moe]" in mj["molt_config"]

# ffn experts (full mode): experts, router weight and bias; the base as model.safetensors
ds, got, ac, mj = check_adapters("ffn", "x_ffn")
for n in ("base_model.model.model.layers.0.mlp.experts.1.gate_proj.weight",
          "base_model.model.model.layers.0.mlp.router.bias"):
    assert n in got, n
assert mj["placement"] == "ffn" and mj["router"] == "factor" and mj["expert_d_ff"] == 32, mj
full, _, _ = st.read("x_ffn/model.safetensors")
want = {p[5:]: v for p, v in ds.items() if p.startswith("base/")}
assert sorted(full) == sorted(want) and all(same(full[n], want[n]) for n in want)
assert "model.layers.0.mlp.up_proj.weight" not in full
print("exports: names and values match h5py; merged within 1e-6 of float64, re-imported exactly")
PY

# ---- 4. malformed input ---------------------------------------------------
b=bad
expect "header too long" 2 "$b/huge.safetensors: header length 1099511627776 exceeds the limit" \
  -- noleak "$MOLT_BIN" import $b/huge.safetensors --out o.h5
expect "offsets past the end" 2 "$b/past_end.safetensors: tensor 'a': data_offsets [16, 32] run past the data section" \
  -- noleak "$MOLT_BIN" import $b/past_end.safetensors --out o.h5
expect "overlap" 2 "$b/overlap.safetensors: tensors 'a' [0, 16) and 'b' [8, 16) overlap" \
  -- noleak "$MOLT_BIN" import $b/overlap.safetensors --out o.h5
expect "unknown dtype" 2 "$b/dtype.safetensors: tensor 'a': unknown dtype \"F33\"" \
  -- noleak "$MOLT_BIN" import $b/dtype.safetensors --out o.h5
expect "shape/size mismatch" 2 "$b/size.safetensors: tensor 'a': shape [3, 2] of F32 needs 24 bytes, but data_offsets span 16" \
  -- noleak "$MOLT_BIN" import $b/size.safetensors --out o.h5
expect "not JSON" 2 "$b/notjson.safetensors: header is not valid JSON" \
  -- noleak "$MOLT_BIN" import $b/notjson.safetensors --out o.h5
expect "truncated" 2 "$b/truncated.safetensors: tensor" "run past the data section" "truncated file?" \
  -- noleak "$MOLT_BIN" import $b/truncated.safetensors --out o.h5
expect "missing tensor" 2 "missing/model.safetensors: tensor model.layers.1.self_attn.v_proj.weight is missing (expected shape [16, 32])" \
  -- noleak "$MOLT_BIN" import missing --out o.h5
expect "mis-shaped tensor" 2 "shape/model.safetensors: tensor model.layers.1.mlp.up_proj.weight has shape [64, 33], expected [64, 32]" \
  -- noleak "$MOLT_BIN" import shape --out o.h5
expect "integer tensor" 2 "int/model.safetensors: tensor model.norm.weight has dtype I32" \
  -- noleak "$MOLT_BIN" import int --out o.h5
[ ! -e o.h5 ] && [ ! -e o.h5.tmp ] && [ ! -e o.ini ] || fail "a failed import left files"
echo "import_export: all checks passed"

#!/usr/bin/env bash
# molt train with data.source = shards: every kind of bad llm.c shard (cut
# short, wrong magic, wrong version, token outside the vocabulary, missing,
# too short for one sequence, not a shard at all) exits 2 with a message that
# names the file, and the token's position when one token is bad. Under 2
# ranks such an error exits 2 without a hang.
source "$MOLT_SRC/tests/cli/lib.bash"
ONE_ERROR=0

cfg="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"
# train_shard PATH [more --set]: train.seq_len = 16, model.vocab_size = 259.
train_shard() {
  local path=$1
  shift
  "$MOLT_BIN" train "$cfg" --set data.source=shards --set "data.train_path=$path" \
    --set log.run_dir="$work/run" --set train.steps=1 "$@"
}

# Shards written independently of molt (numpy), each one fault away from
# good.bin (200 byte tokens, header magic 20240520, version 1, count 200).
"$MOLT_PYTHON" - <<'PY'
import numpy as np

def shard(path, tokens, magic=20240520, version=1):
    hdr = np.zeros(256, "<i4")
    hdr[:3] = magic, version, len(tokens)
    with open(path, "wb") as f:
        f.write(hdr.tobytes() + np.asarray(tokens, "<u2").tobytes())

good = [(7 * i) % 256 for i in range(200)]
shard("good.bin", good)
raw = open("good.bin", "rb").read()
open("truncated.bin", "wb").write(raw[:-11])  # 5.5 tokens short
shard("magic.bin", good, magic=20240521)
shard("version.bin", good, version=2)
bad = list(good)
bad[123] = 300  # vocab_size 259
shard("token.bin", bad)
shard("short.bin", good[:16])  # 16 tokens: a window of seq_len 16 needs 17
PY
# A text file longer than a shard header, given as a shard.
for i in $(seq 40); do echo "line $i of a plain text file that is not a token shard"; done > notes.txt

expect "truncated shard" 2 "truncated.bin: truncated: header says 200 tokens (400 bytes)" \
  "389 bytes" -- train_shard truncated.bin
expect "wrong magic" 2 "magic.bin: bad magic 20240521" -- train_shard magic.bin
# Second entry of a list: good.bin loads, version.bin is the one named.
expect "wrong version" 2 "version.bin: version 2 does not match magic 20240520 (expected 1)" \
  -- train_shard good.bin,version.bin
! grep -q 'good.bin' err.txt || { cat err.txt >&2; fail "wrong version: the good shard was blamed"; }
expect "token >= vocab" 2 "token.bin: token 300 at position 123 is >= model.vocab_size 259" \
  -- train_shard token.bin
expect "missing shard" 2 "no-such.bin: cannot open: No such file or directory" \
  -- train_shard no-such.bin
expect "shard too short" 2 "short.bin: 16 tokens is too few for train.seq_len 16" \
  -- train_shard short.bin
expect "text as shard" 2 "notes.txt: bad magic" "not an llm.c token shard" \
  -- train_shard notes.txt
[ ! -e run ] || fail "a failed run created its run_dir"

# Two ranks: each rank reads the shard, both fail, all agree on 2.
MPIEXEC=${MPIEXEC:-mpiexec $MOLT_MPIRUN_FLAGS}
expect "2 ranks, bad token" 2 "token.bin: token 300 at position 123" \
  -- timeout -k 10 60 $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set data.source=shards \
  --set data.train_path=token.bin --set log.run_dir="$work/run" --set train.steps=1
echo "data_errors: ok"

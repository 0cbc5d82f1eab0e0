#!/usr/bin/env bash
# molt train: each kind of bad configuration file exits 2 with exactly one
# error that names the file, the line and the key, and what is allowed; and
# nothing is written. (Arguments, --set, help and multi-rank: train_args.sh.)
source "$MOLT_SRC/tests/cli/lib.bash"


# conf FILE LINE...: the tiny config with LINEs appended (line numbers below
# count from the top of the fixture, so each case states its own line).
base="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"
nbase=$(wc -l < "$base")
conf() { local f=$1; shift; { cat "$base"; printf '%s\n' "$@"; } > "$f"; }

# A line that is neither [section] nor key = value; the later bad key must not
# be what is reported (the first error in the file wins).
conf syntax.ini '[train]' 'lr 0.01' 'no_such_key = 1'
expect "syntax error" 2 "syntax.ini:$((nbase + 2)): syntax error" \
  "expected [section] or key = value" -- "$MOLT_BIN" train syntax.ini
! grep -q no_such_key err.txt || fail "syntax error: a later line was reported too"

conf section.ini '[trian]' 'lr = 0.01'
expect "unknown section" 2 "section.ini:$((nbase + 1)): [trian]: unknown section" \
  "(allowed: model, lora, moe, train, data, parallel, factor, checkpoint, eval, log)" \
  -- "$MOLT_BIN" train section.ini

conf key.ini '[train]' 'learning_rate = 0.01'
expect "unknown key" 2 "key.ini:$((nbase + 2)): train.learning_rate: unknown key" \
  "allowed in [train]: steps, batch_size," ", lr, min_lr," -- "$MOLT_BIN" train key.ini

conf number.ini '[train]' 'batch_size = 2x'
expect "bad number" 2 "number.ini:$((nbase + 2)): train.batch_size: expected an integer" \
  '"2x"' -- "$MOLT_BIN" train number.ini

conf range.ini '[train]' 'lr = 50'
expect "lr out of range" 2 "range.ini:$((nbase + 2)): train.lr: 50 is out of range" \
  "(allowed: 0 .. 10)" -- "$MOLT_BIN" train range.ini

# The open end of [0, 1): 1 itself is refused, and the message says so.
conf dropout.ini '[lora]' 'dropout = 1'
expect "dropout out of range" 2 "dropout.ini:$((nbase + 2)): lora.dropout: 1 is out of range" \
  "excluding 1" -- "$MOLT_BIN" train dropout.ini

conf enum.ini '[model]' 'mode = fulll'
expect "bad enum" 2 "enum.ini:$((nbase + 2)): model.mode: unknown value \"fulll\"" \
  "(allowed: full, peft)" -- "$MOLT_BIN" train enum.ini

# Each key alone is fine; together they are not (d_model 32 % 3 heads).
conf cross.ini '[model]' 'n_heads = 3' 'n_kv_heads = 3'
expect "cross-key" 2 "cross.ini: model.d_model (32) is not divisible by model.n_heads (3)" \
  -- "$MOLT_BIN" train cross.ini

expect "missing config" 2 "cannot open config no-such.ini" -- "$MOLT_BIN" train no-such.ini

# None of the failed runs wrote outputs (the default run_dir is runs/<name>).
[ ! -e runs ] || fail "a failed run created runs/"

# A directory as CONFIG is bad input (exit 2), not an internal error.
mkdir adir
expect "directory as config" 2 "adir" -- "$MOLT_BIN" train adir
echo "config_errors: ok"

#!/usr/bin/env bash
# molt and molt train on the command line: help exits 0 and lists the keys;
# bad commands, arguments and --set options exit 2 with one message that says
# what is wrong; under 2 ranks a config error exits 2 quickly and is printed
# once, by rank 0. (Errors inside config files: config_errors.sh.)
source "$MOLT_SRC/tests/cli/lib.bash"
ONE_ERROR=0 # checked case by case with one_error

one_error() {
  [ "$(grep -c ': error: ' err.txt)" = 1 ] || { cat err.txt >&2; fail "$1: not one error line"; }
}
cfg="$MOLT_SRC/tests/cli/fixtures/train_tiny.ini"

# Top level (no MPI start): help, no command, unknown command.
expect "molt --help" 0 -- "$MOLT_BIN" --help
grep -q '^  train ' out.txt && grep -q '^  tokenize ' out.txt || fail "molt --help lists commands"
expect "molt alone" 2 -- "$MOLT_BIN"
grep -q 'usage: ' out.txt || fail "molt alone prints usage"
expect "unknown command" 2 "unknown command 'trian'" "usage: " -- "$MOLT_BIN" trian x.ini

# molt train --help: exit 0, every key with its allowed values, even with a
# config and other arguments around it.
expect "molt train --help" 0 -- "$MOLT_BIN" train "$cfg" --set train.lr=1 --help
grep -q 'usage: .*molt train CONFIG' out.txt || fail "train --help usage line"
grep -q '^  train\.lr  *double .*0 \.\. 10' out.txt || fail "train --help lacks train.lr"
grep -q '^  model\.mode .*full, peft' out.txt || fail "train --help lacks model.mode's names"
grep -q '^  lora\.dropout .*excluding 1' out.txt || fail "train --help lacks lora.dropout's range"

# Arguments.
expect "train without CONFIG" 2 "usage: molt train CONFIG" -- "$MOLT_BIN" train
expect "unknown option" 2 "unexpected argument '--bogus'" -- "$MOLT_BIN" train "$cfg" --bogus
one_error "unknown option"

# --set: an unknown key lists the section's keys; a malformed option says the
# form it wants; an out-of-range value is reported as coming from --set.
expect "--set unknown key" 2 "--set: train.bogus: unknown key" "allowed in [train]: steps," \
  -- "$MOLT_BIN" train "$cfg" --set train.lr=0.01 --set train.bogus=1
one_error "--set unknown key"
expect "--set malformed" 2 '--set "foo": expected section.key=value' \
  -- "$MOLT_BIN" train "$cfg" --set foo
one_error "--set malformed"
[ ! -e runs ] || fail "a failed run created runs/"

# Two ranks: rank 0 alone reads the config and reports; every rank exits 2,
# and nobody waits for a collective that never comes.
MPIEXEC=${MPIEXEC:-mpiexec $MOLT_MPIRUN_FLAGS}
expect "2 ranks, config error" 2 "--set: lora.dropout: 1 is out of range" "excluding 1" \
  -- timeout -k 10 60 $MPIEXEC -np 2 "$MOLT_BIN" train "$cfg" --set=lora.dropout=1
one_error "2 ranks, config error"
grep -q 'rank 0\]: error: ' err.txt || fail "2 ranks: the error is not rank 0's"
echo "train_args: ok"

# molt config / collect / metrics (the commands behind launch/sweep, collect
# and plot), single-process with leak checking: their output, and every bad
# input exits 2 with one error naming the file, line, key or value at fault.
source "$MOLT_SRC/tests/cli/lib.bash"
cfg="$MOLT_SRC/tests/configs/tiny_moe.ini"

# molt config: the resolved INI, --get, and the checks of molt train
run "config" 0 "$MOLT_BIN" config "$cfg" --set train.steps=5
grep -qx 'steps = 5' out.txt && grep -qx '\[moe\]' out.txt || fail "config: resolved INI lacks the override"
run "config --get" 0 "$MOLT_BIN" config "$cfg" --get moe.router --set moe.router=topp --get train.steps
[ "$(cat out.txt)" = "$(printf 'topp\n8')" ] || fail "config --get: got '$(cat out.txt)'"
expect "config unknown --get" 2 "no key 'train.nope'" -- "$MOLT_BIN" config "$cfg" --get train.nope
expect "config --get form" 2 "expected section.key" -- "$MOLT_BIN" config "$cfg" --get steps
expect "config bad value" 2 "moe.router" -- "$MOLT_BIN" config "$cfg" --set moe.router=bogus
expect "config missing file" 2 "nofile.ini" -- "$MOLT_BIN" config nofile.ini
expect "config stray arg" 2 "unexpected argument 'extra'" -- "$MOLT_BIN" config "$cfg" extra
expect "train both resumes" 2 "--resume and --auto-resume exclude each other" -- \
  "$MOLT_BIN" train "$cfg" --resume --auto-resume

# molt collect: a hand-made sweep directory
mkdir sw sw/a sw/b
printf 'point\tmoe.router\ttrain.seed\na\ttopk\t1\nb\ttopk\t2\n' >sw/points.tsv
mk() { # DIR MEAN LOSS ELAPSED...
  local d=$1 m=$2 l=$3; shift 3
  printf '{"step":4,"trainable":100,"tasks":{"copy":%s,"mean":%s,"eval_loss":%s}}\n' "$m" "$m" "$l" >"$d/eval.json"
  : >"$d/metrics.jsonl"
  local s=0 e
  for e in "$@"; do s=$((s + 2)); printf '{"step":%d,"loss":1,"tokens":%d,"elapsed":%s}\n' $s $((s * 100)) "$e" >>"$d/metrics.jsonl"; done
  echo done >"$d/status"
}
mk sw/a 0.5 2.0 1 2
mk sw/b 0.7 3.0 1 2 0.5 1.5     # requeued once: wall = 2 + 1.5
printf '{"step":10,"lo' >>sw/b/metrics.jsonl   # a torn last line (killed job) is skipped
run "collect" 0 "$MOLT_BIN" collect sw
grep -q '^| topk | 2 | 60.0 ± 14.1 | 60.0 ± 14.1 | 2.5000 ± 0.7071 | 100 | ' sw/results.md || { cat sw/results.md; fail "collect: row"; }
grep -q '^topk,2,2,0.6,0.141421,0.6,0.141421,2.5,0.707107,100,0,' sw/results.csv || { cat sw/results.csv; fail "collect: csv"; }
# wall: a 2 s and b 2 + 1.5 s; tok/s: a 400/2, b 800/3.5
grep -q ',214.286,20.2031,2.75,1.06066$' sw/results.csv || { cat sw/results.csv; fail "collect: tok/s and wall over requeued segments"; }
# a seed axis zipped with another key (stage 2 from each seed's stage 1):
# without naming both, the two points stay apart; naming both averages them
printf 'point\tmoe.router\ttrain.seed\tmodel.init_from\na\ttopk\t1\tx1.h5\nb\ttopk\t2\tx2.h5\n' >sw/points.tsv
run "collect zip seed apart" 0 "$MOLT_BIN" collect sw
[ "$(grep -c '^| topk |' sw/results.md)" = 2 ] || { cat sw/results.md; fail "collect: init_from apart"; }
run "collect zip seed" 0 "$MOLT_BIN" collect sw --seed-key train.seed,model.init_from
grep -q '^| topk | 2 | 60.0 ± 14.1 | ' sw/results.md || { cat sw/results.md; fail "collect: seed,init_from averaged"; }
expect "collect no dir" 2 "is nowhere a sweep directory?" -- "$MOLT_BIN" collect nowhere
printf 'point\tx\na\t1\t2\n' >sw/points.tsv
expect "collect bad row" 2 "sw/points.tsv:2: 3 cells, the header has 2" -- "$MOLT_BIN" collect sw
printf 'point\tmoe.router\ttrain.seed\na\ttopk\t1\nb\ttopk\t2\n' >sw/points.tsv
printf '{"tasks": {"copy": 1,, }}' >sw/a/eval.json
expect "collect bad eval.json" 2 "sw/a/eval.json: bad JSON at byte" -- "$MOLT_BIN" collect sw
mk sw/a 0.5 2.0 1 2
sed -i '1s/.*/{"step":2,"loss"/' sw/a/metrics.jsonl
expect "collect bad metrics line" 2 "sw/a/metrics.jsonl:1: not a JSON object" -- "$MOLT_BIN" collect sw

# molt metrics
mk sw/a 0.5 2.0 1 2
run "metrics loss" 0 "$MOLT_BIN" metrics sw/a loss
[ "$(sed -n 2p out.txt)" = "2 1 ?" ] || fail "metrics loss: '$(sed -n 2p out.txt)'"
run "metrics sites (none)" 0 "$MOLT_BIN" metrics sw/a sites
[ ! -s out.txt ] || fail "metrics sites: a run without MoE has none"
expect "metrics load range" 2 "site '0' of sw/a: expected 0..-1" -- "$MOLT_BIN" metrics sw/a load 0
expect "metrics no routing" 2 "sw/a/eval.json has no routing table" -- "$MOLT_BIN" metrics sw/a routing
expect "metrics what" 2 "usage: molt metrics" -- "$MOLT_BIN" metrics sw/a nonsense
expect "metrics no run" 2 "nowhere/metrics.jsonl" -- "$MOLT_BIN" metrics nowhere loss
echo ok

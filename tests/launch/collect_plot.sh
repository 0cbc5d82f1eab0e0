# launch/collect and launch/plot on a real 2 x 2 sweep (router x seed):
# results.md / results.csv rows (router and its aux loss zipped) hold the mean and sample std over seeds of
# each point's eval.json (recomputed here with awk), a point without a final
# eval is listed, not dropped, and every chart is a real PNG.
source "$MOLT_SRC/tests/cli/lib.bash"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # ranks under mpirun: see tests/CMakeLists.txt
cat >s.ini <<INI
[sweep]
config = $MOLT_SRC/tests/configs/tiny_moe.ini
np = 1
parallel = 2
[zip]
moe.router = topk,dynmole
moe.aux = balance,dynmole
[grid]
train.seed = 3,4
[fixed]
train.steps = 6
INI
run "sweep" 0 "$MOLT_SRC/launch/sweep" s.ini --local
d=runs/s
png() { # FILE: a PNG of some size
  [ -s "$1" ] && [ "$(stat -c %s "$1")" -gt 2000 ] || fail "$1 missing or tiny"
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$1 is not a PNG"
}
png $d/results.png
[ "$(grep -c '^|' $d/results.md)" = 4 ] || { cat $d/results.md; fail "results.md: expected header, rule and 2 rows"; }
[ "$(grep -c . $d/results.csv)" = 3 ] || fail "results.csv: expected header and 2 rows"
head -1 $d/results.csv | grep -q '^moe.router,moe.aux,n,points,copy,copy_std,' || fail "results.csv header: $(head -1 $d/results.csv)"
head -1 $d/results.csv | grep -q ',mean,mean_std,eval_loss,eval_loss_std,trainable,trainable_std,tok_s,tok_s_std,wall_s,wall_s_std$' ||
  fail "results.csv header lacks the summary columns: $(head -1 $d/results.csv)"

# oracle: mean and sample std of eval_loss over the two seeds of each router
field() { grep -o "\"$2\":[^,}]*" "$1/eval.json" | head -1 | cut -d: -f2 | tr -d '\t '; }
check_row() { # ROUTER POINT POINT
  local a b
  a=$(field $d/$2 eval_loss) b=$(field $d/$3 eval_loss)
  awk -F, -v r="$1" -v a="$a" -v b="$b" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 == r { m = (a + b) / 2; s = sqrt(((a - m)^2 + (b - m)^2) / 1)
              if ($c["n"] != 2) { print "n " $c["n"]; exit 1 }
              if ((($c["eval_loss"] - m)^2) > 1e-10 || (($c["eval_loss_std"] - s)^2) > 1e-10) {
                print "eval_loss " $c["eval_loss"] " +- " $c["eval_loss_std"] ", expected " m " +- " s; exit 1 }
              found = 1 }
    END { exit !found }' $d/results.csv || fail "results.csv row $1 is not mean/std of points $2,$3"
}
check_row topk 000 001
check_row dynmole 002 003
grep -q '^| topk | balance | 2 | ' $d/results.md || fail "results.md: no topk row with n=2"

# a point without a final eval is listed with its status, and its row says so
mv $d/003/eval.json $d/003/eval.json.bak
echo "failed (exit 1, see train.log)" >$d/003/status
run "collect, one missing" 0 "$MOLT_SRC/launch/collect" $d
grep -q '^| dynmole | dynmole | 1\* | ' $d/results.md || { cat $d/results.md; fail "row without its missing seed not marked"; }
grep -q '^- 003 (moe.router=dynmole, moe.aux=dynmole, train.seed=4): failed (exit 1, see train.log)$' $d/results.md ||
  { cat $d/results.md; fail "missing point not listed"; }
grep -q "4 points, 1 without a final eval" out.txt || fail "collect: summary line"
grep -q '^dynmole,dynmole,1,2,' $d/results.csv || fail "results.csv: dynmole row should say 1 of 2 points"
expect "not a sweep" 2 "not a sweep directory" -- "$MOLT_SRC/launch/collect" "$PWD"

# plots: two runs' losses on one chart, each run's load heatmap and routing table
run "plot" 0 "$MOLT_SRC/launch/plot" --out pl $d/000 $d/002
png pl/loss.png
for p in 000 002; do png "pl/runs_s_$p-load.png"; png "pl/runs_s_$p-routing.png"; done
run "plot one run" 0 "$MOLT_SRC/launch/plot" $d/001
png $d/001/loss.png
expect "plot no run" 2 "metrics.jsonl not found" -- "$MOLT_SRC/launch/plot" nowhere
echo ok

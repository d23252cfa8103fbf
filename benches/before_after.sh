#!/usr/bin/env bash
# Two builds of hydrowatch through every benchmark, alternated in the same minutes (the
# machine's speed drifts more between sessions than builds differ). Used when a change must
# leave the figures as they were (issue #16):
#   benches/before_after.sh OLD_BINARY NEW_BINARY [ROUNDS] [DMA_DIR]
# Prints each bench's own output, labelled. The backtest of the baselines on the real DMAs must
# give the same scores to the last digit (the contest is deterministic): its tables are diffed.
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); ROUNDS=${3:-2}
DMA=$(realpath "${4:-$(dirname "$0")/../../shared/data/dma-inflow}")
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
say() { echo; echo "=== $*"; }
for round in $(seq "$ROUNDS"); do
  for build in old new; do
    bin=$OLD; [ $build = new ] && bin=$NEW
    say "round $round, $build: bench detect --runs 3"
    (cd "$WORK" && "$bin" bench detect --runs 3)
    say "round $round, $build: bench daemon --runs 3"
    (cd "$WORK" && "$bin" bench daemon --runs 3)
    say "round $round, $build: bench storage --reps 3"
    (cd "$WORK" && "$bin" bench storage --reps 3 | tail -12)
    say "round $round, $build: demo --exit --replay-seconds 20"
    (cd "$WORK" && /usr/bin/time -f "wall %e s, peak %M kB" "$bin" demo --exit --replay-seconds 20 --listen 127.0.0.1:0 2>&1 | tail -12)
  done
done
say "import of a simulated year, hyperfine"
"$NEW" simulate --days 365 --out "$WORK/year.csv" >/dev/null
(cd "$WORK" && hyperfine -N --warmup 1 --runs 6 --prepare 'rm -f hydrowatch.db hydrowatch.db-wal hydrowatch.db-shm' \
  "$OLD import year.csv" "$NEW import year.csv")
say "backtest of the baselines on the DMAs (identical tables expected)"
for build in old new; do
  bin=$OLD; [ $build = new ] && bin=$NEW
  (cd "$WORK" && /usr/bin/time -f "$build: wall %e s, peak %M kB" "$bin" backtest --timezone Europe/Rome --model none "$DMA"/dma_*.csv > "$WORK/backtest-$build.txt" 2>"$WORK/backtest-$build.err"; tail -1 "$WORK/backtest-$build.err")
done
if diff <(grep -v "fit s\|fcst ms" "$WORK/backtest-old.txt" | sed 's/|[^|]*|[^|]*| [0-9]* ([0-9]*) |$//; s/ *[0-9.]* *[0-9.]* *[0-9]*\/[0-9]* *$//') \
        <(grep -v "fit s\|fcst ms" "$WORK/backtest-new.txt" | sed 's/|[^|]*|[^|]*| [0-9]* ([0-9]*) |$//; s/ *[0-9.]* *[0-9.]* *[0-9]*\/[0-9]* *$//'); then
  echo "backtest: the same scores, old and new"
else
  echo "backtest: the scores differ (above)"
fi

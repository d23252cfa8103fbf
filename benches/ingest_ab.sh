#!/usr/bin/env bash
# Two builds of the central server under the same ingest load, alternated in the same minutes
# (the machine's speed drifts more between sessions than builds differ):
#   benches/ingest_ab.sh OLD_BINARY NEW_BINARY [BATCH] [ROUNDS] [SECONDS] [POSTGRES_URL]
# Each round starts each server on a fresh SQLite file (or, with POSTGRES_URL, on a fresh
# database of that cluster: postgres://user@host:port, the database name is added), issues the
# token and runs `wrk -t2 -c16 --latency -s benches/ingest.lua` against it (wrk from Debian's
# apt).
set -euo pipefail
OLD=$1; NEW=$2; BATCH=${3:-10}; ROUNDS=${4:-6}; SECONDS_EACH=${5:-8}; PG=${6:-}
LUA="$(cd "$(dirname "$0")" && pwd)/ingest.lua"
n=0
run() { # binary label
  n=$((n + 1))
  local dir; dir=$(mktemp -d)
  # `hydrowatch --db FILE serve ...` or `hydrowatch serve --database URL ...`
  local serve=("$1" --db "$dir/load.db" serve)
  if [ -n "$PG" ]; then
    local name="load_ab_$$_$n"
    psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
    serve=("$1" serve --database "$PG/$name")
  fi
  local token; token=$("${serve[@]}" token create load 2>/dev/null)
  "${serve[@]}" --listen 127.0.0.1:18081 --rate-limit 0 >/dev/null 2>&1 &
  local pid=$!; sleep 1
  local out; out=$(HW_BATCH=$BATCH HW_TOKEN=$token wrk -t2 -c16 -d"${SECONDS_EACH}s" --latency -s "$LUA" http://127.0.0.1:18081)
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
  echo "$2 batch=$BATCH $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s p50 $(echo "$out" | awk '$1 == "50%" {print $2}') p99 $(echo "$out" | awk '$1 == "99%" {print $2}') non-2xx: $(echo "$out" | grep -c Non-2xx || true)"
}
for _ in $(seq "$ROUNDS"); do
  run "$OLD" old
  run "$NEW" new
done

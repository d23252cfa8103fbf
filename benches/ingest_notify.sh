#!/usr/bin/env bash
# The central server's ingest with and without a notification rule active, alternated in the
# same minutes (issue #17: no more than 10% fewer envelopes per second with rules active):
#   benches/ingest_notify.sh BINARY [BATCH] [ROUNDS] [SECONDS] [POSTGRES_URL]
# Each run starts the server on a fresh SQLite file (or, with POSTGRES_URL, on a fresh database
# of that cluster: postgres://user@host:port, the database name is added), issues the device's
# token, and with the rule: adds an admin, then a webhook rule matching every alarm (stage 1
# and above, grouped per device per 60 s) to a local receiver answering 200 (a Python standard
# library HTTP server, part of this bench only), then runs
# `wrk -t2 -c16 --latency -s benches/ingest.lua` (wrk from Debian's apt). Every envelope is an
# alarm opening, so every one is planned into a notification.
set -euo pipefail
BIN=$1; BATCH=${2:-10}; ROUNDS=${3:-4}; SECONDS_EACH=${4:-8}; PG=${5:-}
HERE="$(cd "$(dirname "$0")" && pwd)"
LUA="$HERE/ingest.lua"
python3 - <<'PY' &
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18099), H).serve_forever()
PY
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
sleep 1
n=0
run() { # label rule(0|1)
  n=$((n + 1))
  local dir; dir=$(mktemp -d)
  # `hydrowatch --db FILE serve ...` or `hydrowatch serve --database URL ...`
  local serve=("$BIN" --db "$dir/load.db" serve)
  if [ -n "$PG" ]; then
    local name="load_$$_$n"
    psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
    serve=("$BIN" serve --database "$PG/$name")
  fi
  local token; token=$("${serve[@]}" token create load 2>/dev/null)
  if [ "$2" = 1 ]; then
    printf 'admin-password\n' | "${serve[@]}" user add admin --role admin 2>/dev/null
    local admin; admin=$("${serve[@]}" token create --operator admin 2>/dev/null)
  fi
  # Builds since issue #30 send webhooks to loopback only when asked.
  local private=()
  "$BIN" serve --help | grep -q -- --private-webhooks && private=(--private-webhooks)
  "${serve[@]}" --listen 127.0.0.1:18081 --rate-limit 0 "${private[@]}" >/dev/null 2>&1 &
  local pid=$!; sleep 1
  if [ "$2" = 1 ]; then
    curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
      -d '{"name":"all","min_stage":1,"channel":"webhook","target":"http://127.0.0.1:18099/hook","secret":"bench-secret-0123456789","group_seconds":60}' \
      http://127.0.0.1:18081/api/v1/rules >/dev/null
  fi
  local out; out=$(HW_BATCH=$BATCH HW_TOKEN=$token wrk -t2 -c16 -d"${SECONDS_EACH}s" --latency -s "$LUA" http://127.0.0.1:18081)
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
  echo "$1 batch=$BATCH $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s p50 $(echo "$out" | awk '$1 == "50%" {print $2}') p99 $(echo "$out" | awk '$1 == "99%" {print $2}') non-2xx: $(echo "$out" | grep -c Non-2xx || true)"
}
for _ in $(seq "$ROUNDS"); do
  run "no-rule" 0
  run "rule   " 1
done

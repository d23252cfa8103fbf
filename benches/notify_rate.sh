#!/usr/bin/env bash
# Notifications delivered per second, and one device's flood against another device's alarm
# (issue #30, finding 6), two builds alternated in the same minutes:
#   benches/notify_rate.sh OLD_BINARY NEW_BINARY [ALARMS] [ROUNDS]
# Each run starts a server on a fresh SQLite file with a webhook rule matching every alarm, each
# alarm its own notification (group_seconds 0), to a local receiver answering 200 at once (a
# Python standard-library HTTP server, part of this bench only). Device `flood` sends ALARMS
# (default 2000) alarm openings in batches of 100, then device `other` one. Printed: the seconds
# from the start of the ingest until the receiver has them all, the rate, and how many of the
# flood reached the receiver before the other device's alarm.
set -euo pipefail
OLD=$1; NEW=$2; ALARMS=${3:-2000}; ROUNDS=${4:-2}
WORK=$(mktemp -d)
python3 - "$WORK/received" <<'PY' &
import http.server, json, sys
out = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            out.write(json.loads(body).get("device_id", "?") + "\n")
        except ValueError:
            out.write("?\n")
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18099), H).serve_forever()
PY
SINK=$!
trap 'kill $SINK 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1
batch() { # device first count
  python3 -c '
import json, sys
device, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(json.dumps({"device_id": device, "messages": [{"device_id": device, "message_id": f"m{a}", "kind": "alert",
  "created_at": "2024-07-01T00:00:00Z", "body": {"machine_number": 1, "time": "2024-07-01 09:00",
  "outlier_stage": 3, "value": 1.0, "series": "flow_rate", "unit": "m3/h", "direction": "high",
  "expected": 0.5, "percentile": 99.9, "kind": "outlier", "alarm_id": a, "state": "opened"}}
  for a in range(first, first + count)]}))' "$@"
}
run() { # binary label
  local dir; dir=$(mktemp -d)
  local serve=("$1" --db "$dir/n.db" serve)
  local flood other admin
  flood=$("${serve[@]}" token create flood 2>/dev/null | head -1)
  other=$("${serve[@]}" token create other 2>/dev/null | head -1)
  printf 'admin-password\n' | "${serve[@]}" user add admin --role admin >/dev/null 2>&1
  admin=$("${serve[@]}" token create --operator admin 2>/dev/null | head -1)
  local private=()
  "$1" serve --help | grep -q -- --private-webhooks && private=(--private-webhooks)
  "${serve[@]}" --listen 127.0.0.1:18081 --rate-limit 0 --silent-after 0 "${private[@]}" >"$dir/log" 2>&1 &
  local pid=$!; sleep 1
  curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"name":"all","min_stage":1,"channel":"webhook","target":"http://127.0.0.1:18099/hook","secret":"bench-secret-0123456789","group_seconds":0}' \
    http://127.0.0.1:18081/api/v1/rules >/dev/null
  : > "$WORK/received"
  local start; start=$(date +%s.%N)
  for first in $(seq 1 100 "$ALARMS"); do
    batch flood "$first" 100 | curl -sf -o /dev/null -H "Authorization: Bearer $flood" \
      -H 'content-type: application/json' --data-binary @- http://127.0.0.1:18081/api/v1/ingest
  done
  batch other 1 1 | curl -sf -o /dev/null -H "Authorization: Bearer $other" \
    -H 'content-type: application/json' --data-binary @- http://127.0.0.1:18081/api/v1/ingest
  local want=$((ALARMS + 1))
  while [ "$(wc -l < "$WORK/received")" -lt "$want" ]; do
    sleep 0.1
    if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "$2: timed out"; break; fi
  done
  local took; took=$(echo "$(date +%s.%N) - $start" | bc)
  local before; before=$(grep -n '^other$' "$WORK/received" | head -1 | cut -d: -f1)
  echo "$2: $want notifications in $(printf %.1f "$took") s ($(echo "$want / $took" | bc) a second); the other device's alarm arrived after $((before - 1)) of the flood"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
}
for _ in $(seq "$ROUNDS"); do
  run "$OLD" old
  run "$NEW" new
done

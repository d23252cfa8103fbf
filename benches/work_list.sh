#!/bin/bash
# The list to handle (/api/v1/alarms/active) on a server database holding 110,000 alarms that were
# opened, cleared and acknowledged, and 20 active ones (issue #30, finding 12): the time of six
# requests by each of two builds, alternated, each on its own copy of the same database (schema
# version 6, made by the first build; the second migrates its copy on opening).
#
#   benches/work_list.sh OLD_BINARY NEW_BINARY
set -euo pipefail
OLD=$1 NEW=$2
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "correct-horse-battery" | "$OLD" serve --db "$DIR/v6.db" user add root --role admin >/dev/null 2>&1
TOKEN=$("$OLD" serve --db "$DIR/v6.db" token create --operator root 2>/dev/null | head -1)
python3 - "$DIR/v6.db" <<'PY'
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("INSERT INTO devices (id, token_hash, created_at) VALUES ('dma-1', 'x', 0)")
def body(a, state, stage):
    return json.dumps({"machine_number": 1, "time": "2024-07-01 09:00", "outlier_stage": stage,
        "value": 1.0, "series": "flow_rate", "unit": "m3/h", "direction": "high", "expected": 0.5,
        "percentile": 99.99, "kind": "outlier", "alarm_id": a, "state": state})
rows = []
t0 = 1719792000
for a in range(1, 110021):
    rows.append((f"o{a}", "dma-1", a, "opened", 2, t0 + a * 60, body(a, "opened", 2)))
    if a <= 110000:
        rows.append((f"c{a}", "dma-1", a, "cleared", 0, t0 + a * 60 + 30, body(a, "cleared", 0)))
c.executemany("INSERT INTO alerts (message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)"
              " VALUES (?, ?, ?, 'flow_rate', 'outlier', ?, ?, ?, ?)", rows)
c.execute("DELETE FROM unplanned_alerts")
c.execute("INSERT INTO alarm_state (device_id, alarm_id, acked_through, acked_by, acked_at)"
          " SELECT device_id, alarm_id, max(id), 'root', 0 FROM alerts WHERE alarm_id <= 110000 GROUP BY device_id, alarm_id")
c.commit()
PY
time_list() { # BINARY NAME PORT
    cp "$DIR/v6.db" "$DIR/$2.db" 2>/dev/null || true
    "$1" serve --db "$DIR/$2.db" --listen "127.0.0.1:$3" --silent-after 0 >"$DIR/$2.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$3/api/v1/openapi.json" && break; sleep 0.2; done
    printf '%s:' "$2"
    for _ in 1 2 3 4 5 6; do
        curl -s -o /dev/null -w ' %{time_total}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$3/api/v1/alarms/active"
    done
    echo " s"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
for round in 1 2; do
    time_list "$OLD" old 18181
    time_list "$NEW" new 18182
    rm -f "$DIR/old.db" "$DIR/new.db"
done

#!/usr/bin/env bash
# Scores hydrowatch's detector on every scenario wntr_corpus.py wrote into DIR: for each,
# `hydrowatch detect --labels` with the scenario's configuration and, where it was written, its
# leak-free twin (`--twin`): the per-kind table (found, and found earlier than chance would
# explain), false alarms a week on the twin and the alarm load. Full reports go to
# DIR/<scenario>.score.txt.
#   corpus/detection/score.sh DIR [zone]
# With `zone`, the zone-only configurations (every series setting at hydrowatch's defaults).
# HYDROWATCH names the binary (default: hydrowatch on the PATH).
set -euo pipefail
DIR="${1:?usage: score.sh DIR [zone]}"
SUFFIX="toml"
[ "${2:-}" = "zone" ] && SUFFIX="zone.toml"
BIN="${HYDROWATCH:-hydrowatch}"
for labels in "$DIR"/*.labels.csv; do
    name="$(basename "$labels" .labels.csv)"
    twin=()
    [ -f "$DIR/$name.twin.csv" ] && twin=(--twin "$DIR/$name.twin.csv")
    echo "== $name ($SUFFIX)"
    "$BIN" --config "$DIR/$name.$SUFFIX" detect --input "$DIR/$name.csv" \
        --output "$DIR/$name.judged.csv" --alarms "$DIR/$name.alarms.jsonl" \
        --labels "$labels" "${twin[@]}" > "$DIR/$name.score.txt" 2>&1 || { cat "$DIR/$name.score.txt"; continue; }
    sed -n '/^| kind |/,/^$/p' "$DIR/$name.score.txt"
    grep -E '^(alarms opened:.*false alarms|leak-free twin:|alarm load:|twin alarm load:)' "$DIR/$name.score.txt"
    grep -E 'changes of state learned|smallest leak' "$DIR/$name.score.txt" || true
done

#!/usr/bin/env bash
# The tests, on a fresh Debian machine with the Rust toolchain: installs what the tests run
# against when it is missing (Chromium and chromedriver for the dashboard, PostgreSQL's programs
# for the server's throwaway clusters, Mosquitto for MQTT; with apt, through sudo when not
# root), then `cargo test --workspace --locked` with any arguments given.
#   tools/test.sh [CARGO TEST ARGUMENTS...]
set -euo pipefail
cd "$(dirname "$0")/.."

MISSING=()
command -v chromium >/dev/null || MISSING+=(chromium)
command -v chromedriver >/dev/null || MISSING+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || MISSING+=(postgresql)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || MISSING+=(mosquitto)
if [ ${#MISSING[@]} -gt 0 ]; then
    echo "== installing what the tests need: ${MISSING[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
fi

cargo test --workspace --locked "$@"

#!/usr/bin/env bash
# Creates the Python venv of the statsforecast peer (benches only: the product never runs Python).
#   benches/statsforecast/setup.sh [VENV]    (default: ~/.cache/hydrowatch-peer-venv)
set -euo pipefail
VENV="${1:-$HOME/.cache/hydrowatch-peer-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "statsforecast==2.1.1" "pandas==2.3.3"
"$VENV/bin/python" -c "import statsforecast, pandas; print('statsforecast', statsforecast.__version__, 'pandas', pandas.__version__, 'in $VENV')"

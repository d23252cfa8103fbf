#!/usr/bin/env bash
# Creates the Python venv of the detection corpus generator (WNTR, which runs EPANET).
# The product never runs Python; this only writes data files.
#   corpus/detection/setup.sh [VENV]    (default: ~/.cache/hydrowatch-wntr-venv)
set -euo pipefail
VENV="${1:-$HOME/.cache/hydrowatch-wntr-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
# wntr 1.5.0 imports six without declaring it.
"$VENV/bin/pip" install --quiet "wntr==1.5.0" "six==1.17.0" "numpy==2.4.6" "pandas==3.1.1" \
    "scipy==1.17.1" "networkx==3.6.1"
"$VENV/bin/python" -c "import wntr; print('wntr', wntr.__version__, 'in $VENV')"

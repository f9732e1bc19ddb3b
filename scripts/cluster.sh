#!/usr/bin/env bash
# Local 4-department cluster on loopback: scripts/cluster.sh up|down|status [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/certledger cluster "$@"

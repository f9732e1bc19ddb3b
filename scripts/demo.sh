#!/usr/bin/env bash
# Set up (idempotent) and run the demo on the embedded default: one node, SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/certledger demo "$@"

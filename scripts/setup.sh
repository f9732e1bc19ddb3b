#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine.
#   scripts/setup.sh          runtime: Python venv with certledger, fonts
#   scripts/setup.sh --test   plus everything the test suite uses (openssl CLI, node + sm-crypto,
#                             PostgreSQL, etcd, poppler, Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

RUNTIME_PKGS=(python3 python3-venv openssl libssl3 fonts-wqy-zenhei)
TEST_PKGS=(postgresql etcd-server etcd-client poppler-utils libnss3-tools zbar-tools chromium fonts-arphic-uming fonts-noto-cjk)
apt_install "${RUNTIME_PKGS[@]}"
if ((WANT_TEST)); then
  apt_install "${TEST_PKGS[@]}"
  # Node.js may come from elsewhere (e.g. NodeSource, npm bundled): only install Debian's when absent
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.certledger-installed
EXTRA=""
((WANT_TEST)) && EXTRA="[test]"
if [[ ! -f "$STAMP$EXTRA" || pyproject.toml -nt "$STAMP$EXTRA" ]]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".$EXTRA"
  touch "$STAMP$EXTRA"
fi

if ((WANT_TEST)); then
  if [[ ! -d tests/js/node_modules/sm-crypto || ! -d tests/js/node_modules/ofd.js || ! -d tests/js/node_modules/jsdom \
        || tests/js/package.json -nt tests/js/node_modules ]]; then
    (cd tests/js && npm install --silent --no-audit --no-fund)
  fi
fi
echo "setup: ready (venv at $ROOT/.venv)"

#!/usr/bin/env bash
# Install everything the project needs, from its own files: the Python venv (.venv) with the
# pinned emulator and packaging tools, the Node tools, and the Rust dependencies. Idempotent:
# a step is redone only when its pinned list changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.requirements.installed 2>/dev/null; then
  echo "setup: installing Python packages into .venv (requirements.txt)"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.requirements.installed
fi

if ! cmp -s package-lock.json node_modules/.package-lock.installed 2>/dev/null; then
  echo "setup: installing Node tools (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.installed
fi

cargo fetch --locked --quiet 2>/dev/null || cargo fetch --quiet

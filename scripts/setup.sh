#!/usr/bin/env bash
# Set up a fresh machine: system packages (Redis server), a virtualenv in .venv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null
    fi
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
echo "set up: activate with  . .venv/bin/activate"

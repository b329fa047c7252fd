#!/usr/bin/env bash
# The whole test suite: unit, rule-pack, lint and type checks, integration.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
exec python -m pytest "$@"

#!/usr/bin/env bash
# The demo on a fresh machine: set up if needed (scripts/setup.sh --if-needed), then
# `tagger demo` (a broker, Redis, a worker and a simulated shop on loopback; Ctrl-C stops
# everything it started). Arguments go to `tagger demo`, e.g. scripts/demo.sh --duration 60.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --if-needed
exec .venv/bin/tagger demo "$@"

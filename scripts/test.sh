#!/usr/bin/env bash
# The whole test suite: unit, rule-pack, lint and type checks, integration. It sets the
# machine up first if needed (scripts/setup.sh --if-needed: a fresh clone gets .venv and
# the system packages). It runs in as many processes as there are cores, up to 4
# (pytest-xdist): the integration tests mostly wait on broker groups and timers; an idle
# process takes tests queued for another (worksteal), so the long integration tests do not
# end up on one. Arguments go to pytest; `-n 0` runs in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --if-needed
. .venv/bin/activate
exec python -m pytest -n auto --maxprocesses 4 --dist worksteal "$@"

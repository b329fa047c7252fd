#!/usr/bin/env bash
# Set up a fresh machine: system packages (Redis server; promtool and docker-compose, with
# which the tests check the deploy/ files), a virtualenv in .venv with the locked
# dependencies (deploy/requirements-dev.lock, every file checked against its sha256), and
# the project in it, its core compiled with mypyc where a C compiler is present (a minute
# or two; TAGGER_COMPILE=0 skips it).
#
#   scripts/setup.sh              set up (again)
#   scripts/setup.sh --if-needed  only when something is missing, or .venv was set up
#                                 by this script from another lock, pyproject.toml or
#                                 setup.py (scripts/demo.sh and test.sh run this; a .venv
#                                 made by hand is left as it is)
set -euo pipefail
cd "$(dirname "$0")/.."

LOCK=deploy/requirements-dev.lock
STAMP=.venv/.set-up  # what the venv was set up from: the hash of these files
wanted=$(cat "$LOCK" pyproject.toml setup.py | sha256sum | cut -d' ' -f1)

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # test certificates

if [ "${1:-}" = "--if-needed" ] && [ ${#missing[@]} -eq 0 ] && [ -x .venv/bin/tagger ] \
    && { [ ! -e "$STAMP" ] || [ "$(cat "$STAMP")" = "$wanted" ]; }; then
    exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # The prometheus package would start its server as a service: only promtool is needed.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The lock is made for Python 3.11 (the image's): prefer it where there are several.
python=$(command -v python3.11 || command -v python3)
"$python" -m venv .venv
echo "set-up under way" >"$STAMP"  # an interrupted set-up is done again by --if-needed
# The dependencies, the dev tools and the build requirements, exactly as locked; then the
# project itself, built with those (no isolated build environment: nothing unlocked is
# fetched), and a check that the lock left nothing out.
.venv/bin/pip install -q --require-hashes --no-deps -r "$LOCK"
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
.venv/bin/pip check >/dev/null
echo "$wanted" >"$STAMP"
echo "set up: $(.venv/bin/tagger --version); activate with  . .venv/bin/activate"

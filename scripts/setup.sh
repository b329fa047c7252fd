#!/usr/bin/env bash
# Set up a fresh machine: system packages (Redis server; promtool and docker-compose, with
# which the tests check the deploy/ files), a virtualenv in .venv, the project (its core
# compiled with mypyc where a C compiler is present: a minute or two; TAGGER_COMPILE=0
# skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # test certificates
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # The prometheus package would start its server as a service: only promtool is needed.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip 'setuptools>=68'  # the build backend, for the wheel test
.venv/bin/pip install -q -e '.[dev]'
echo "set up: $(.venv/bin/tagger --version); activate with  . .venv/bin/activate"

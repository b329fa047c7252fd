#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml with pip-tools' pip-compile (pinned below),
# every package pinned with the sha256 hashes of its files on PyPI:
#   deploy/requirements-dev.lock    what scripts/setup.sh (and so CI) installs: the runtime
#                                   dependencies, the `dev` extra and the build-system
#                                   requirements (the build runs without isolation)
#   deploy/requirements.lock        the runtime dependencies: what the image installs
#   deploy/requirements-build.lock  the build-system requirements: what the image's
#                                   builder stage builds the wheel (and the core) with
# The dev lock is resolved first; the other two are constrained by it, so that a package
# has one version in all three (tests/lint/test_locks.py checks it, offline).
#
#   deploy/lock.sh                          keep today's pins, add or drop what changed
#   deploy/lock.sh --upgrade                every package to its newest allowed version
#   deploy/lock.sh --upgrade-package rich   one package
#
# Needs Python 3.11 (the image's; set PYTHON to another 3.11) and PyPI; takes ~10 minutes
# (the build requirements are found by asking the build backend, in an isolated build).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS=pip-tools==7.6.2
PYTHON=${PYTHON:-python3.11}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { echo "lock.sh: needs Python 3.11 (set PYTHON)" >&2; exit 2; }

# PyPI as everyone sees it: no local wheel folders, mirrors or constraints from this
# machine's pip configuration (they would end up in the lock's hashes or pins).
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIRE_VIRTUALENV

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools"
"$tools/bin/pip" install -q "$PIP_TOOLS"

# The command each lock's header names to refresh it.
export CUSTOM_COMPILE_COMMAND="deploy/lock.sh"
compile() {
    "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links "$@"
}
compile --extra dev --all-build-deps -o deploy/requirements-dev.lock "${@}" pyproject.toml
compile -c deploy/requirements-dev.lock -o deploy/requirements.lock pyproject.toml
compile -c deploy/requirements-dev.lock --only-build-deps --all-build-deps \
    -o deploy/requirements-build.lock pyproject.toml
echo "locked: deploy/requirements-dev.lock deploy/requirements.lock deploy/requirements-build.lock"

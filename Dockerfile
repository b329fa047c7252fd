# syntax=docker/dockerfile:1
# The tagger worker: `tagger run` (the default command) or any other `tagger` subcommand.
#
#   docker build -t tagger .
#   docker run --rm -e TAGGER_BROKER_URL=kafka://broker:9092 \
#       -e TAGGER_REDIS_URL=redis://redis:6379/0 -p 6066:6066 tagger
#
# Two stages: the builder makes a virtualenv in /opt/venv from the locked runtime
# dependencies (deploy/requirements.lock, every file checked against its sha256) and the
# project's wheel, built with the locked build requirements
# (deploy/requirements-build.lock; both made by deploy/lock.sh); the final image is the
# slim Python base plus that virtualenv (the rule pack is in the wheel), run as an
# unprivileged user.
# The base image is pinned to an exact Python patch release; pin its digest too
# (python:3.11.13-slim-bookworm@sha256:...) for byte-for-byte reproducible builds.

FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A C compiler, for the compiled core (setup.py compiles the hot modules with mypyc); in the
# builder only: the image gets the compiled modules, not the compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The build backend and mypyc, with the packages whose types mypyc checks the core against
# (pyproject.toml [build-system]), locked with hashes, in the builder's own Python only
# (never in the image). Dependencies first: these layers are reused until a lock changes.
COPY deploy/requirements-build.lock deploy/requirements-build.lock
RUN pip install --require-hashes --no-deps -r deploy/requirements-build.lock

RUN python -m venv /opt/venv
COPY deploy/requirements.lock deploy/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r deploy/requirements.lock

COPY pyproject.toml setup.py README.md ./
COPY taggers taggers
COPY streams streams
# The bundled rule pack: package data of the wheel (taggers.rules_pack).
COPY rules rules
# `pip check`: --no-deps trusts the lock to be complete (--require-hashes already refuses
# an unpinned one); fail the build if it is not.
# pip and setuptools are not needed to run, and only widen the image's attack surface.
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools


FROM python:3.11.13-slim-bookworm

# A fixed uid/gid, so that Kubernetes' runAsUser and file ownership match the image.
RUN groupadd --system --gid 10001 tagger \
    && useradd --system --uid 10001 --gid tagger --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tagger

COPY --from=builder /opt/venv /opt/venv
# The worker runs the pack bundled in the wheel, unless ./rules exists in the working
# directory or TAGGER_RULES_DIR names a directory: mount another rule directory at
# /app/rules (read-only is enough) to run other rules; the worker reloads it when it
# changes (TAGGER_RULES_POLL_INTERVAL).

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TAGGER_WEB_PORT=6066

WORKDIR /app
# Smoke test at build time: the package imports, its core is the compiled build, and the
# bundled rules load (from the installed package: /app/rules does not exist in the image).
RUN tagger --version | grep "compiled core" && tagger rules check

USER 10001:10001

# /metrics, /healthz, /readyz, /profiles, /tags
EXPOSE 6066

# Liveness only (/healthz): readiness (/readyz) also needs partitions assigned, which a
# worker beyond the partition count never gets. No curl in the slim image: Python asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TAGGER_WEB_PORT', '6066') + '/healthz', timeout=4)"]

ENTRYPOINT ["tagger"]
CMD ["run"]

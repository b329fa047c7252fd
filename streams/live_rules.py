"""Keeping a worker's rules current while it runs: reload on change, recompute after.

**Reload.** Every worker watches its own rule directory (``TAGGER_RULES_DIR``), polling a
hash of the files every ``TAGGER_RULES_POLL_INTERVAL`` seconds. A changed directory is
loaded once it has stayed the same for one more poll (an editor or a copy half done is
not loaded), validated and compiled, then swapped in under the worker's lock, that is
between two fetches: every event of a fetch is applied under one rule set, whose version
is on every output it gives. A rule set that fails validation is logged with file:line:
column, counted, and reported to Redis; the old set stays live. Whatever the files hold
(hostile YAML, huge lists, devices), loading gives a rule set or problems, within the
bounds of docs/rules.md ("Limits"), and runs in a thread: the event loop keeps serving.

Workers converge because they read the same files: in Kubernetes a ConfigMap mounted as
a volume (updated atomically on every node within about a minute), in Compose a bind
mount. We chose files over publishing rule sets to a compacted topic: files are what rule
authors and GitOps already review and version, and rolling back is checking out the old
files; a topic would need its own publish tool and a consumer outside the group in every
worker. What files do not give, Redis does: each worker reports its live version there,
so ``tagger rules status`` and the ``tagger_rules_info`` metric show a worker that has not
converged.

**Recompute.** A worker that starts or reloads with a version other than the last
recompute's starts a new one: every stored profile is re-evaluated under the new rules
(``Engine.recompute``), so users with no new events gain and lose tags and move stage too.
One worker at a time runs it (a lease in Redis), ``TAGGER_RECOMPUTE_RATE`` users a second,
from a SCAN cursor kept in Redis: a restart resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from streams import metrics
from streams.redis_retry import redis_call
from streams.rules_board import (
    Recompute,
    Rejection,
    RulesBoard,
    WorkerRules,
    recompute_progress,
)
from taggers.engine import Engine
from taggers.outputs import Output
from taggers.pipeline import Pipeline, Prepared
from taggers.profile import Profile
from taggers.redaction import withheld
from taggers.rulediff import new_aggregates
from taggers.ruleset import RuleSet, load_rules, rules_version
from taggers.store import OperationsStore, StoreConflictError
from taggers.yaml_source import RuleSetError

log = logging.getLogger(__name__)
# Seconds between recompute steps. A step holds the worker's lock (events wait), so steps
# are small and often: at the default rate, 250 users, about 25 ms of engine time.
RECOMPUTE_INTERVAL = 0.25
PROGRESS_LOG_EVERY = 15.0  # seconds between two log lines of the recompute's progress
LEASE_MS = 10_000  # renewed every step; a crashed holder is replaced this soon
MAX_CONFLICT_RETRIES = 5
MAX_PROBLEMS_KEPT = 50

Send = Callable[[Prepared], Awaitable[None]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_id() -> str:
    """This worker's name in the status: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LiveRules:
    """A worker's live rule set: reloads it when its directory changes, and runs its
    share of the recompute that follows (see the module docstring).

    Of the store it reads and writes profiles and scans the users (``users_page``); the
    status and the recompute's progress and lease are on the ``board``, which is Redis.
    """

    def __init__(
        self,
        rules: RuleSet,
        directory: Path,
        pipeline: Pipeline,
        store: OperationsStore,
        board: RulesBoard,
        lock: asyncio.Lock,
        send: Send,
        *,
        recompute_rate: int,
    ) -> None:
        self.rules = rules
        self.directory = directory
        self.pipeline = pipeline
        self.store = store
        self.board = board
        self.lock = lock
        self.send = send
        self.recompute_rate = recompute_rate
        self.worker = worker_id()
        self.loaded_at = _now()
        self.rejected: Rejection | None = None
        self._settling: str | None = None  # a changed version seen once, not yet loaded
        self._progress_logged = time.monotonic()  # the first line after a while, not at once
        metrics.RULES_INFO.labels(rules.version).set(1)

    # --- reload ----------------------------------------------------------------------------

    def started(self) -> None:
        """Report this worker's rules; start a recompute if the stored profiles were last
        recomputed under another version."""
        self._report()
        if self.recompute_rate and self.board.start_recompute(self.rules.version, None, _now()):
            log.info("recompute started", extra={"version": self.rules.version})

    async def poll(self) -> None:
        """Check the rule directory once; load and swap in a changed, settled rule set."""
        # Off the event loop: reading and compiling are bounded (docs/rules.md, "Limits"),
        # but a large rule set still takes a moment that heartbeats must not wait for.
        try:
            version = await asyncio.to_thread(rules_version, self.directory)
        except OSError as error:
            log.warning("cannot read the rule directory: %s", error)
            return
        rejected = self.rejected.version if self.rejected else None
        if version in (self.rules.version, rejected):
            self._settling = None
            await redis_call(self._report)  # the heartbeat
            return
        if version != self._settling:
            self._settling = version  # load it if it is the same at the next poll
            return
        self._settling = None
        try:
            rules = await asyncio.to_thread(load_rules, self.directory)
        except RuleSetError as error:
            self._reject(version, [str(problem) for problem in error.problems])
        else:
            if rules.version == version:  # else it changed while loading: next poll
                await self._swap(rules)
        await redis_call(self._report)

    def _reject(self, version: str, problems: list[str]) -> None:
        metrics.RULE_RELOADS.labels("rejected").inc()
        self.rejected = Rejection(_now(), version, problems[:MAX_PROBLEMS_KEPT])
        log.error(
            "rule set %s rejected (%d problems), %s stays live: %s",
            version,
            len(problems),
            self.rules.version,
            "; ".join(problems[:10]),
            extra={"version": version, "live_version": self.rules.version},
        )

    async def _swap(self, rules: RuleSet) -> None:
        previous = self.rules
        engine = Engine(rules)
        async with self.lock:  # between fetches and sweeps: none sees half of each
            self.pipeline.engine = engine
            self.rules = rules
        self.loaded_at = _now()
        metrics.RULE_RELOADS.labels("loaded").inc()
        metrics.RULES_INFO.clear()
        metrics.RULES_INFO.labels(rules.version).set(1)
        log.info(
            "rule set %s is live (was %s)",
            rules.version,
            previous.version,
            extra={"version": rules.version, "previous_version": previous.version},
        )
        for notice in new_aggregates(previous, rules):
            log.warning("%s", notice, extra={"version": rules.version})
        if self.recompute_rate:
            await redis_call(self.board.start_recompute, rules.version, previous.version, _now())

    def _report(self) -> None:
        self.board.report(
            WorkerRules(
                self.worker,
                self.rules.version,
                str(self.directory),
                self.loaded_at,
                _now(),
                self.rejected,
            )
        )

    def stopped(self) -> None:
        """Take this worker off the status (best effort: Redis may be away)."""
        try:
            self.board.forget(self.worker)
        except Exception as error:
            log.warning("could not take this worker off the rule status: %s", error)

    # --- recompute -------------------------------------------------------------------------

    async def recompute_step(self) -> None:
        """Re-evaluate one step's worth of stored profiles, if a recompute of the
        live rules is running and this worker holds (or takes) its lease."""
        if not self.recompute_rate:
            return
        progress = await redis_call(self.board.recompute)
        live = progress is not None and progress.version == self.rules.version
        metrics.RECOMPUTE_RUNNING.set(1 if live and progress and progress.running else 0)
        if progress is None or not live or not progress.running:
            return
        metrics.RECOMPUTE_SCANNED.set(progress.scanned)
        if not await redis_call(self.board.lease, self.worker, LEASE_MS):
            return  # another worker runs it
        if progress.scanned == 0 and progress.cursor == "0":
            await redis_call(self._estimate_total, progress.version)
        async with self.lock:
            if self.rules.version != progress.version:
                return  # reloaded meanwhile
            step = max(1, round(self.recompute_rate * RECOMPUTE_INTERVAL))
            cursor, users = await redis_call(self.store.users_page, progress.cursor, step)
            changed = await self._recompute(users, self.pipeline.engine)
        self._advance(progress, cursor, len(users), changed)
        await redis_call(self.board.save_progress, progress)
        metrics.RECOMPUTE_SCANNED.set(progress.scanned)
        if progress.running:
            await self._log_progress(progress)
        else:
            metrics.RECOMPUTE_RUNNING.set(0)
            log.info(
                "recompute of %s done: %d users, %d changed",
                progress.version,
                progress.scanned,
                progress.changed,
                extra={"version": progress.version},
            )

    def _estimate_total(self, version: str) -> None:
        """Before a recompute's first step, record how many users it has to re-evaluate,
        for its rate and time left: every person is in one stage, so the stages' sizes
        add up to them (set sizes, not a scan). Rules with no lifecycle leave it unknown."""
        if self.rules.lifecycle is None:
            return
        by_stage, _ = self.store.population(list(self.rules.lifecycle.stages))
        self.board.save_total(version, sum(by_stage.values()))

    async def _log_progress(self, progress: Recompute) -> None:
        """A line with the recompute's rate and time left, every PROGRESS_LOG_EVERY s."""
        now = time.monotonic()
        if now - self._progress_logged < PROGRESS_LOG_EVERY:
            return
        self._progress_logged = now
        total = await redis_call(self.board.total, progress.version)
        text = recompute_progress(progress, total)
        if text is not None:
            log.info("%s (version %s)", text, progress.version, extra={"version": progress.version})

    def _advance(self, progress: Recompute, cursor: str, scanned: int, changed: int) -> None:
        progress.cursor = cursor
        progress.scanned += scanned
        progress.changed += changed
        progress.updated_at = _now()
        progress.worker = self.worker
        if cursor == "0":
            progress.finished_at = progress.updated_at

    async def _recompute(self, users: list[str], engine: Engine) -> int:
        """Re-evaluate these users, send what changed, save them; how many changed.
        A user another writer changed meanwhile is read and re-evaluated again."""
        changed = 0
        for _ in range(MAX_CONFLICT_RETRIES):
            if not users:
                break
            profiles = await redis_call(self.store.load, users)
            outputs, dirty = self._evaluate(engine, profiles)
            await self.send(Prepared(0, outputs=outputs))  # before the state: as batches do
            users = []
            for partition, batch in _by_partition(dirty).items():
                try:
                    await redis_call(self.store.save, batch, partition=partition)
                except StoreConflictError as conflict:
                    metrics.STORE_CONFLICTS.inc()
                    users += conflict.user_ids
            changed += len(dirty) - len(users)
        else:
            log.warning("recompute gave up on %d users that kept changing", len(users))
        return changed

    def _evaluate(
        self, engine: Engine, profiles: dict[str, Profile]
    ) -> tuple[list[Output], list[Profile]]:
        outputs: list[Output] = []
        dirty = []
        for user, profile in profiles.items():
            before = orjson.dumps(profile.to_dict())
            try:
                found = engine.recompute(profile)
            except Exception as error:  # a bug: the recompute must not stop for one user
                metrics.RECOMPUTE_USERS.labels("failed").inc()
                log.error(
                    "recompute failed for a user",
                    extra={"user_id": user},
                    exc_info=withheld(error),
                )
                continue
            if found or orjson.dumps(profile.to_dict()) != before:
                outputs += found
                dirty.append(profile)
                metrics.RECOMPUTE_USERS.labels("changed").inc()
            else:
                metrics.RECOMPUTE_USERS.labels("unchanged").inc()
        return outputs, dirty


def _by_partition(profiles: list[Profile]) -> dict[int, list[Profile]]:
    """Profiles by the partition whose deadline set holds them."""
    found: dict[int, list[Profile]] = {}
    for profile in profiles:
        found.setdefault(profile.partition, []).append(profile)
    return found

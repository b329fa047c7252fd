"""What a deployment runs, kept in Redis where every worker and ``tagger rules status``
can read it: each worker's live rule-set version and last rejected rule set, and the
progress of the background recompute that follows a rule change.

Layout (``P`` is the key prefix): ``P:rules:workers`` a hash, worker id -> JSON;
``P:rules:recompute`` JSON of the current recompute; ``P:rules:recompute:lease`` the
worker that runs it (one at a time, with an expiry, so another takes over after a crash);
``P:rules:recompute:total`` how many users it has to re-evaluate, as estimated when it
began (a key of its own, so that workers of an older release read the recompute as before).

The board is Redis itself, not a store behind ``taggers.store``'s contracts: it takes the
Redis client (in the worker, the store's ``RedisStore.client``), so it needs Redis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from streams.redis_store import Client
from streams.work_progress import Amount, describe

# Set a key only while it still holds the same recompute (a newer rule change may have
# started another meanwhile); and take or keep a lease. One key each: cluster-safe.
_SAVE_IF_SAME: Final = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['version'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_LEASE: Final = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(slots=True)
class Rejection:
    """A rule set that failed validation: when, its version, and its problems."""

    at: str
    version: str
    problems: list[str]


@dataclass(slots=True)
class WorkerRules:
    """One worker's rules: the live version, where from, and the last rejection."""

    worker: str
    version: str
    directory: str
    loaded_at: str
    seen_at: str
    rejected: Rejection | None = None


@dataclass(slots=True)
class Recompute:
    """A background recompute: re-evaluating every stored profile under ``version``."""

    version: str
    previous: str | None
    started_at: str
    cursor: str = "0"  # the scan cursor to go on from (see OperationsStore.users_page)
    scanned: int = 0
    changed: int = 0
    finished_at: str | None = None
    updated_at: str | None = None
    worker: str | None = None  # the last worker that ran a step

    @property
    def running(self) -> bool:
        """Whether users are still to be re-evaluated."""
        return self.finished_at is None


def _json(value: Any) -> bytes:
    return orjson.dumps(dataclasses.asdict(value))


class RulesBoard:
    """Reads and writes the deployment's rule status in Redis."""

    def __init__(self, client: Client, prefix: str = "tagger") -> None:
        self.client = client
        base = f"{prefix}:rules"
        self.workers_key = f"{base}:workers"
        self.recompute_key = f"{base}:recompute"
        self.lease_key = f"{base}:recompute:lease"
        self.total_key = f"{base}:recompute:total"
        self._save_if_same = client.register_script(_SAVE_IF_SAME)
        self._lease = client.register_script(_LEASE)

    def report(self, worker: WorkerRules) -> None:
        """Record a worker's rules (also its heartbeat: ``seen_at``)."""
        self.client.hset(self.workers_key, worker.worker, _json(worker))

    def forget(self, worker: str) -> None:
        """Drop a worker that stops."""
        self.client.hdel(self.workers_key, worker)

    def workers(self) -> list[WorkerRules]:
        """Every worker's last report, by worker id."""
        found = []
        for _, data in sorted(self.client.hgetall(self.workers_key).items()):
            item = orjson.loads(data)
            rejected = item.pop("rejected")
            found.append(WorkerRules(**item, rejected=Rejection(**rejected) if rejected else None))
        return found

    def recompute(self) -> Recompute | None:
        """The current (or last) recompute, if any."""
        data = self.client.get(self.recompute_key)
        return None if data is None else Recompute(**orjson.loads(data))

    def start_recompute(self, version: str, previous: str | None, now: str) -> bool:
        """Start re-evaluating every profile under ``version``, unless that is the current
        (or last) recompute already; whether one was started. A recompute of another
        version is superseded: the new one re-evaluates every rule anyway."""
        current = self.recompute()
        if current is not None and current.version == version:
            return False
        self.client.set(self.recompute_key, _json(Recompute(version, previous, now)))
        return True

    def save_progress(self, progress: Recompute) -> bool:
        """Record progress, unless another recompute has started meanwhile."""
        saved = self._save_if_same(
            keys=[self.recompute_key], args=[progress.version, _json(progress)]
        )
        return bool(saved)

    def lease(self, worker: str, ttl_ms: int) -> bool:
        """Take or keep the right to run the recompute for ``ttl_ms``."""
        return bool(self._lease(keys=[self.lease_key], args=[worker, ttl_ms]))

    def save_total(self, version: str, users: int) -> None:
        """Record how many users the recompute of ``version`` has to re-evaluate."""
        self.client.set(self.total_key, orjson.dumps({"version": version, "users": users}))

    def total(self, version: str) -> int | None:
        """The estimate of how many users the recompute of ``version`` re-evaluates, if one
        was recorded for it (not one of an earlier recompute)."""
        data = self.client.get(self.total_key)
        if data is None:
            return None
        found = orjson.loads(data)
        return int(found["users"]) if found.get("version") == version else None


RECOMPUTED: Final = Amount("users")


def recompute_progress(recompute: Recompute, total: int | None) -> str | None:
    """How far a recompute has come, for people: ``recompute: 40% (4,000 users of 10,000
    users), 812 users/s, 7 s left``, the rate over its time so far (from its start to its
    last step). None before its first step, or when its times do not read."""
    try:
        started = datetime.fromisoformat(recompute.started_at)
        last = datetime.fromisoformat(recompute.finished_at or recompute.updated_at or "")
    except ValueError:
        return None
    elapsed = (last - started).total_seconds()
    # A scan may return a user twice, and users join meanwhile: never past the total.
    estimate = None if total is None else max(total, recompute.scanned)
    if not recompute.running:
        estimate = None  # done: the count and the rate, nothing left
    return describe("recompute", recompute.scanned, estimate, elapsed, RECOMPUTED)

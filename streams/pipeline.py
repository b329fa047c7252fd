"""What the worker does with a batch of one partition, apart from Kafka itself.

Decode, skip what Redis already has, run the engine, and save. Outputs are sent by the
caller between ``prepare`` and ``save``, so an output is always on its topic before the
state that produced it is in Redis: after a crash the batch is redone and yields the same
outputs with the same ids (at least once; subscribers drop duplicates by id).
"""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from taggers.clock import MAX_FUTURE_SKEW_MS, EventClock, future_error
from taggers.engine import Engine
from taggers.events import EVENT_TYPES, EventError, decode_event
from taggers.outputs import Output
from taggers.profile import Profile
from taggers.replay import fire_due
from taggers.store import ProfileStore

log = logging.getLogger(__name__)


ENGINE_ERROR = "engine_error"  # the DLQ reason of an event the engine failed on
UNDECODED = "unknown"  # the type of an event that went to the DLQ


def type_label(event_type: str) -> str:
    """A metric label for an event type: types outside the known set (events of any
    other type are accepted) count as ``other``, so that labels stay a bounded set."""
    return event_type if event_type in EVENT_TYPES else "other"


class _EngineError(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def _timer_failed(user_id: str, error: Exception) -> None:
    # A bug; the user's deadline is dropped so that every sweep does not fail on it again.
    log.error(
        "engine failed on a user's deadline; it is dropped",
        extra={"user_id": user_id},  # an id, never the event's content
        exc_info=error,
    )


@dataclass(frozen=True, slots=True)
class Record:
    """A message as it came off the topic; ``timestamp`` is its Kafka timestamp (epoch ms)."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that is not a valid event, with why, for the DLQ."""

    record: Record
    reason: str
    message: str

    def to_json(self, topic: str) -> bytes:
        """The DLQ record: the original bytes (text if UTF-8, else base64) and the error."""
        raw = self.record.value or b""
        try:
            original: dict[str, Any] = {"value": raw.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"value_base64": base64.b64encode(raw).decode()}
        return orjson.dumps(
            {
                "topic": topic,
                "partition": self.record.partition,
                "offset": self.record.offset,
                "reason": self.reason,
                "error": self.message,
                **original,
            }
        )


@dataclass(slots=True)
class Prepared:
    """A processed batch, not yet saved: outputs to send, then profiles to save."""

    partition: int
    source: str | None = None  # where the offsets are from (default: the partition)
    outputs: list[Output] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rekey: list[tuple[str, bytes]] = field(default_factory=list)  # (user_id, raw event)
    profiles: dict[str, Profile] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    # (event type label, outcome) -> events: applied, redelivered (Redis had it), dead, rekeyed
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)


class Pipeline:
    """Runs batches and timer sweeps of one worker through the engine and the store."""

    def __init__(
        self,
        engine: Engine,
        store: ProfileStore,
        max_event_bytes: int,
        *,
        max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.max_event_bytes = max_event_bytes
        self.max_future_skew_ms = max_future_skew_ms
        self.wall_clock = wall_clock
        self.clocks: dict[int, EventClock] = {}  # partition -> its time on the event clock

    def watermark(self, partition: int) -> int | None:
        """How far a partition's events have moved its event clock, if at all."""
        clock = self.clocks.get(partition)
        return None if clock is None or clock.time == 0 else clock.time

    def prepare(
        self,
        partition: int,
        records: list[Record],
        *,
        source: str | None = None,
        check_keys: bool = False,
    ) -> Prepared:
        """Decode a batch of one partition and apply it to the profiles (one store read).

        With ``check_keys``, an event whose message key is not its user id is not applied
        here but returned in ``rekey``, to be sent on keyed by user id: a user's events
        must all pass through one partition to be applied in order.

        An event the engine fails on (a bug, not bad input: the engine does not raise on
        any valid event) goes to the DLQ as ``engine_error`` instead of stopping the
        partition for good, and the batch is prepared again without it from profiles read
        afresh, so nothing of the failed event stays in a profile. This needs a store that
        hands out copies, as Redis does.
        """
        failed: dict[int, str] = {}  # offset -> what the engine raised
        while True:
            try:
                return self._prepare(partition, records, source, check_keys, failed)
            except _EngineError as failure:
                log.error(
                    "engine failed on an event; it goes to the DLQ",
                    extra={"partition": partition, "offset": failure.offset},
                    exc_info=failure.__cause__,
                )
                failed[failure.offset] = failure.message

    def _prepare(
        self,
        partition: int,
        records: list[Record],
        source: str | None,
        check_keys: bool,
        failed: dict[int, str],
    ) -> Prepared:
        origin = str(partition) if source is None else source
        batch = Prepared(partition, origin)
        events = []
        # A message is never sent after now: a producer whose clock is ahead cannot
        # stretch the skew allowed to its events.
        now = int(self.wall_clock() * 1000)
        for record in records:
            if record.offset in failed:
                batch.dead.append(DeadLetter(record, ENGINE_ERROR, failed[record.offset]))
                batch.outcomes[UNDECODED, "dead"] += 1
                continue
            try:
                event = decode_event(record.value or b"", max_bytes=self.max_event_bytes)
            except EventError as error:
                batch.dead.append(DeadLetter(record, error.reason, error.message))
                batch.outcomes[UNDECODED, "dead"] += 1
                continue
            sent_at = now if record.timestamp is None else min(record.timestamp, now)
            future = future_error(event, sent_at, self.max_future_skew_ms)
            if future is not None:
                batch.dead.append(DeadLetter(record, future.reason, future.message))
                batch.outcomes[UNDECODED, "dead"] += 1
                continue
            if check_keys and record.key != event.user_id.encode():
                batch.rekey.append((event.user_id, record.value or b""))
                batch.outcomes[type_label(event.type), "rekeyed"] += 1
                continue
            events.append((record, event))
        users = list(dict.fromkeys(event.user_id for _, event in events))
        profiles, applied = self.store.load_applied(users, origin)
        clock = self.clocks.setdefault(partition, EventClock())
        for record, event in events:
            # Seen, even if Redis has it already: a worker that takes over a partition
            # whose last events were all applied must still sweep up to their time.
            clock.observe(event.user_id, event.ts)
            user = event.user_id
            if record.offset <= applied.get(user, -1):
                batch.outcomes[type_label(event.type), "redelivered"] += 1
                continue
            profile = profiles.get(user)
            if profile is None:
                profile = profiles[user] = self.engine.new_profile(user)
            try:
                batch.outputs.extend(self.engine.apply(profile, event))
            except Exception as error:  # any bug: the partition must not stop for it
                raise _EngineError(record.offset, f"{type(error).__name__}: {error}") from error
            batch.profiles[user] = profile
            batch.offsets[user] = record.offset
            batch.outcomes[type_label(event.type), "applied"] += 1
        return batch

    def sweep(self, partition: int, now: int, limit: int = 1000) -> Prepared:
        """Fire the deadlines of one partition's users that are due by ``now``."""
        outputs, profiles = fire_due(
            self.engine, self.store, now, partition=partition, limit=limit, on_error=_timer_failed
        )
        return Prepared(partition, outputs=outputs, profiles=profiles)

    def save(self, batch: Prepared) -> dict[str, str]:
        """Save a prepared batch's profiles (with their offsets) in one round trip."""
        if not batch.profiles:
            return {}
        return self.store.save(
            batch.profiles.values(),
            partition=batch.partition,
            offsets=batch.offsets or None,
            source=batch.source,
        )

"""What the worker does with a batch of one partition, apart from Kafka itself.

Decode, skip what Redis already has, run the engine, and save. Outputs are sent by the
caller between ``prepare`` and ``save``, so an output is always on its topic before the
state that produced it is in Redis: after a crash the batch is redone and yields the same
outputs with the same ids (at least once; subscribers drop duplicates by id).

What Redis already has is told by position, per watermark (see ``taggers.sources`` for
the input sources and their watermarks). An event of the events topic keyed otherwise
than by its user is re-sent to the re-keyed topic with its origin and guarded by that
origin, never by the copy's own offset. Per origin partition and user, copies reach the
user's re-keyed partition in origin order, and a redo repeats a suffix of them (it
resends from the committed offset, and everything before that was acked first), so "past
the watermark" is exactly "not applied yet". That rests on what the worker does: its one
producer keeps each partition's order (aiokafka has one request per partition in flight
and retries it first), a fetch's copies are acked before the next fetch and before its
offsets can be committed, and a send that fails stops the worker. (Were one copy to fail
for good while a later one of the same user and partition went through, the redo could
not fill that gap: the failed one would be refused as known. A batch expiring in the
producer during a broker outage is the one way we know of.) A record of the re-keyed
topic with an unreadable origin goes to the DLQ (``bad_origin``).
"""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from taggers.clock import MAX_FUTURE_SKEW_MS, EventClock, future_error
from taggers.engine import Engine
from taggers.events import EVENT_TYPES, BehaviourEvent, EventError, decode_event
from taggers.identity import (
    DEFAULT_MAX_IDS,
    IDENTITY_EVENTS,
    Change,
    Identity,
    IdentityError,
    Target,
    targets,
)
from taggers.outputs import Output
from taggers.profile import Profile
from taggers.redaction import withheld
from taggers.replay import ENGINE_ERROR, fire_due
from taggers.sources import EVENTS, Headers, InputSource, Origin, origin_of
from taggers.store import ProfileStore, StoreConflictError

log = logging.getLogger(__name__)


BAD_ORIGIN = "bad_origin"  # the DLQ reason of a re-keyed record whose origin is unreadable
UNDECODED = "unknown"  # the type of an event that went to the DLQ
IDENTITY_KEY = "{identity}"
"""The key identify and forget events are re-keyed by: one partition runs every identity
change, one at a time, so that no two race (braces: no user id can be it)."""
FORGOTTEN = "forgotten"  # the outcome of an event under a forgotten id, older than the forget


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
        exc_info=withheld(error),
    )


@dataclass(frozen=True, slots=True)
class Record:
    """A message as it came off the topic; ``timestamp`` is its Kafka timestamp (epoch ms)."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """An event to re-send keyed by its user id, with its origin."""

    user_id: str
    value: bytes
    origin: Origin
    timestamp: int | None = None  # the original's Kafka timestamp, which the copy keeps


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that is not a valid event, with why, for the DLQ. ``source``: the input
    source it was read from; ``origin``: the events-topic position of a re-keyed copy."""

    record: Record
    reason: str
    message: str
    source: InputSource = EVENTS
    origin: Origin | None = None

    @property
    def entered(self) -> tuple[InputSource, int, int]:
        """Where the event entered the worker: a copy's origin, else where it was read
        (a source, a partition and an offset there), the same however often a copy was
        sent."""
        if self.origin is not None:
            return self.origin.source, self.origin.partition, self.origin.offset
        return self.source, self.record.partition, self.record.offset

    def to_json(self, topics: Mapping[InputSource, str]) -> bytes:
        """The DLQ record: where the event entered (``entered``, its source named by its
        topic in ``topics``), the original bytes (text if UTF-8, else base64) and the
        error."""
        raw = self.record.value or b""
        try:
            original: dict[str, Any] = {"value": raw.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"value_base64": base64.b64encode(raw).decode()}
        source, partition, offset = self.entered
        return orjson.dumps(
            {
                "topic": topics[source],
                "partition": partition,
                "offset": offset,
                "reason": self.reason,
                "error": self.message,
                **original,
            }
        )


@dataclass(slots=True)
class Prepared:
    """A processed batch, not yet saved: outputs to send, then profiles to save."""

    partition: int
    outputs: list[Output] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rekey: list[Copy] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # user -> source -> offset
    # (event type label, outcome) -> events: applied, redelivered (Redis had it), dead, rekeyed
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    # aggregate name -> values of the wrong type it skipped (a sum given a string)
    skipped: Counter[str] = field(default_factory=Counter)
    # alert name -> alerts not sent because the person opted out of marketing
    suppressed: Counter[str] = field(default_factory=Counter)
    # An identity change (a batch of one identify or forget): saved by ``change.apply``.
    change: Change | None = None
    # How many of the records given were taken: a batch stops before an identity event
    # (which is a batch of its own), so that it reads what the events before it saved.
    taken: int = 0

    def add_dead(self, dead: DeadLetter) -> None:
        """Send a record to the DLQ (counted as an undecoded event)."""
        self.dead.append(dead)
        self.outcomes[UNDECODED, "dead"] += 1


class _Guarded(NamedTuple):
    """An event to apply, with the watermark and offset that guard it."""

    record: Record
    event: BehaviourEvent
    watermark: str
    offset: int


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
        max_ids: int = DEFAULT_MAX_IDS,
    ) -> None:
        if not store.hands_out_copies:  # prepare() undoes a failed event by reading again
            raise ValueError("the pipeline needs a store that hands out copies")
        self.engine = engine
        self.store = store
        self.max_event_bytes = max_event_bytes
        self.max_future_skew_ms = max_future_skew_ms
        self.wall_clock = wall_clock
        self.clocks: dict[int, EventClock] = {}  # partition -> its time on the event clock
        self.max_ids = max_ids

    def watermark(self, partition: int) -> int | None:
        """How far a partition's events have moved its event clock, if at all."""
        clock = self.clocks.get(partition)
        return None if clock is None or clock.time == 0 else clock.time

    def prepare(
        self, partition: int, records: list[Record], *, source: InputSource = EVENTS
    ) -> Prepared:
        """Decode a batch of one partition of ``source`` and apply it to the profiles (one
        store read).

        Each event is guarded by its watermark (``taggers.sources``), so that what Redis
        has is skipped: the source's own one of the partition, or, for a record that
        carries its origin in a source that ``reads_origin``, that origin's. If the source
        ``rekeys``, an event whose message key is not its user id is not applied here but
        returned in ``rekey`` with its origin, to be sent on keyed by user id.

        An event the engine fails on (a bug, not bad input: the engine does not raise on
        any valid event) goes to the DLQ as ``engine_error`` instead of stopping the
        partition for good, and the batch is prepared again without it from profiles read
        afresh, so nothing of the failed event stays in a profile. This needs a store that
        hands out copies (``ProfileStore.hands_out_copies``), as Redis does: the pipeline
        refuses any other.
        """
        failed: dict[int, str] = {}  # offset -> what the engine raised
        while True:
            batch = Prepared(partition)
            try:
                self._apply(batch, self._read(batch, records, source, failed))
            except _EngineError as failure:
                log.error(
                    "engine failed on an event; it goes to the DLQ",
                    extra={"partition": partition, "offset": failure.offset},
                    exc_info=withheld(failure.__cause__ or failure),
                )
                failed[failure.offset] = failure.message
            else:
                batch.suppressed = self.engine.drain_suppressed()
                return batch

    def _read(
        self, batch: Prepared, records: list[Record], source: InputSource, failed: dict[int, str]
    ) -> list[_Guarded]:
        """Decode and check the records: dead letters and copies go into ``batch``; the
        events to apply are returned with their guards, in the partition's order."""
        events: list[_Guarded] = []
        # A message is never sent after now: a producer whose clock is ahead cannot
        # stretch the skew allowed to its events.
        now = int(self.wall_clock() * 1000)
        for index, record in enumerate(records):
            batch.taken = index + 1
            try:
                origin = origin_of(record.headers) if source.reads_origin else None
            except ValueError as error:
                batch.add_dead(DeadLetter(record, BAD_ORIGIN, str(error), source))
                continue
            if record.offset in failed:
                error_text = failed[record.offset]
                batch.add_dead(DeadLetter(record, ENGINE_ERROR, error_text, source, origin))
                continue
            try:
                event = self._event(record, now)
            except EventError as error:
                batch.add_dead(DeadLetter(record, error.reason, error.message, source, origin))
                continue
            if event.type in IDENTITY_EVENTS and not source.rekeys:
                if events:  # a batch of its own, once what comes before it is saved
                    batch.taken = index
                else:
                    self._identity(batch, record, event, source, origin)
                break
            if source.rekeys and (
                event.type in IDENTITY_EVENTS or record.key != event.user_id.encode()
            ):
                key = IDENTITY_KEY if event.type in IDENTITY_EVENTS else event.user_id
                at = Origin(record.partition, record.offset)
                batch.rekey.append(Copy(key, record.value or b"", at, record.timestamp))
                batch.outcomes[type_label(event.type), "rekeyed"] += 1
            elif origin is None:
                own = source.watermark(record.partition)
                events.append(_Guarded(record, event, own, record.offset))
            else:
                events.append(_Guarded(record, event, origin.watermark, origin.offset))
        return events

    def _identity(
        self,
        batch: Prepared,
        record: Record,
        event: BehaviourEvent,
        source: InputSource,
        origin: Origin | None,
    ) -> None:
        """An identify or forget: its change (step 1 done) goes into ``batch``, or the
        event to the DLQ when it cannot be done."""
        try:
            identity = Identity(self.engine, self.store, self.max_ids)
            change = identity.change(event, f"e:{event.event_id}")
        except IdentityError as error:
            batch.add_dead(DeadLetter(record, error.reason, error.message, source, origin))
            return
        except StoreConflictError:
            raise
        except Exception as error:  # a bug: the partition must not stop for it
            raise _EngineError(record.offset, f"{type(error).__name__}: {error}") from error
        if change.recovered:
            log.warning(
                "finishing an identity change a crash had stopped",
                extra={"partition": record.partition, "offset": record.offset},
            )
            batch.taken -= 1  # the event itself comes next, in a batch of its own
        else:
            batch.outcomes[type_label(event.type), "applied"] += 1
        batch.change = change
        batch.outputs.extend(change.outputs)

    def _event(self, record: Record, now: int) -> BehaviourEvent:
        """The event a record holds; EventError if it goes to the DLQ instead."""
        event = decode_event(record.value or b"", max_bytes=self.max_event_bytes)
        sent_at = now if record.timestamp is None else min(record.timestamp, now)
        future = future_error(event, sent_at, self.max_future_skew_ms)
        if future is not None:
            raise future
        return event

    def _apply(self, batch: Prepared, events: list[_Guarded]) -> None:
        """Apply the events past their watermarks to their persons' stored profiles."""
        if not events:
            return
        wanted: dict[str, set[str]] = {}
        for guarded in events:
            wanted.setdefault(guarded.event.user_id, set()).add(guarded.watermark)
        profiles, applied, found = self._load(wanted)
        clock = self.clocks.setdefault(batch.partition, EventClock())
        for record, event, watermark, offset in events:
            # Seen, even if Redis has it already: a worker that takes over a partition
            # whose last events were all applied must still sweep up to their time.
            clock.observe(event.user_id, event.ts)
            user = event.user_id
            target = found.get(user) or Target(user)
            person = target.person
            # Guarded per id it came under: each such watermark has one path here.
            guard = watermark if person == user else f"{watermark}@{user}"
            marks = applied.setdefault(person, {})
            if offset <= marks.get(guard, -1):
                batch.outcomes[type_label(event.type), "redelivered"] += 1
                continue
            profile = profiles.get(person)
            if profile is None:
                profile = profiles[person] = target.new_profile(self.engine, user)
            if target.left_behind(profile, event.ts):
                batch.outcomes[type_label(event.type), FORGOTTEN] += 1
                continue
            try:
                batch.outputs.extend(self.engine.apply(profile, event, skipped=batch.skipped))
            except Exception as error:  # any bug: the partition must not stop for it
                raise _EngineError(record.offset, f"{type(error).__name__}: {error}") from error
            marks[guard] = offset  # a later copy of it in this batch is a redelivery too
            batch.profiles[person] = profile
            batch.offsets.setdefault(person, {})[guard] = offset
            batch.outcomes[type_label(event.type), "applied"] += 1

    def _load(
        self, wanted: dict[str, set[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]], dict[str, Target]]:
        """The profiles and applied offsets of the persons the wanted ids lead to, and
        where each id that has no profile leads (a link's person; a forget's time)."""
        profiles, applied = self.store.load_applied(wanted)
        if len(profiles) == len(wanted):
            return profiles, applied, {}  # the usual case: every id is a person
        found = targets(self.store, [u for u in wanted if u not in profiles])
        via: dict[str, set[str]] = {}
        for user, target in found.items():
            if target.person != user:
                via.setdefault(target.person, set()).update(f"{w}@{user}" for w in wanted[user])
        if via:
            more, more_applied = self.store.load_applied(via)
            profiles.update(more)
            for person, marks in more_applied.items():
                applied.setdefault(person, {}).update(marks)
            self._guard_in_flight(via, applied)
        return profiles, applied, found

    def _guard_in_flight(
        self, persons: Collection[str], applied: dict[str, dict[str, int]]
    ) -> None:
        """Raise the watermarks of these persons by those of the transfers their merges
        still hold: a redelivered event under an absorbed id whose transfer the person has
        not yet absorbed is in the transfer, so it must be refused here too. (Once the
        merge is saved the person holds those watermarks itself, and a write from a read
        before that is refused as a conflict.)"""
        pending = self.store.transfers()
        if not pending:
            return  # the usual case: no merge in flight
        owners = self.store.resolve(list(pending))
        for user, transfer in pending.items():
            person = owners.get(user, user)
            if person in persons:
                marks = applied.setdefault(person, {})
                for watermark, offset in transfer.offsets.items():
                    marks[watermark] = max(offset, marks.get(watermark, -1))

    def sweep(self, partition: int, now: int, limit: int = 1000) -> Prepared:
        """Fire the deadlines of one partition's users that are due by ``now``."""
        outputs, profiles = fire_due(
            self.engine, self.store, now, partition=partition, limit=limit, on_error=_timer_failed
        )
        suppressed = self.engine.drain_suppressed()
        return Prepared(partition, outputs=outputs, profiles=profiles, suppressed=suppressed)

    def save(self, batch: Prepared) -> dict[str, str]:
        """Save a prepared batch's profiles (with their offsets) in one round trip; an
        identity change, step by step (``Change.apply``)."""
        if batch.change is not None:
            batch.change.apply(self.store)
            return {}
        if not batch.profiles:
            return {}
        return self.store.save(
            batch.profiles.values(), partition=batch.partition, offsets=batch.offsets or None
        )

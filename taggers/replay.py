"""Run a stream of raw event lines through the engine, with the clock driven by event time.

The clock is the latest time that two different users' events reached (``EventClock``).
Whenever it moves, every user whose deadline it passed is advanced (as a live timer sweep
would), so inactivity, expiry and "no X within N days" rules fire during a replay exactly
as they would live. Given when the lines were sent, an event dated too far after it is a
``future`` bad line, as the worker makes it a ``future`` dead letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from taggers.clock import MAX_FUTURE_SKEW_MS, EventClock, future_error
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES, BehaviourEvent, EventError, decode_event
from taggers.identity import (
    DEFAULT_MAX_IDS,
    IDENTITY_EVENTS,
    Identity,
    IdentityError,
    locate,
)
from taggers.outputs import Output
from taggers.profile import Profile
from taggers.store import MemoryStore, ProfileStore

ENGINE_ERROR: Final = "engine_error"  # the reason of an event the engine failed on


@dataclass(frozen=True, slots=True)
class BadLine:
    """An input line that is not a valid event."""

    line: int
    reason: str
    message: str


def fire_due(
    engine: Engine,
    store: ProfileStore,
    until: int,
    *,
    partition: int = 0,
    limit: int = 1000,
    on_error: Callable[[str, Exception], None] | None = None,
) -> tuple[list[Output], dict[str, Profile]]:
    """Fire the deadlines of up to ``limit`` users due by ``until``; return the outputs and
    the advanced profiles, not yet saved (deadlines of users with no profile are dropped).

    With ``on_error``, a user the engine fails on (a bug) is reported to it and left out:
    their profile is not returned and their deadline is dropped, so that the next sweep
    does not fail on them again (their next event sets a deadline anew).
    """
    due = store.due(until, partition=partition, limit=limit)
    if not due:
        return [], {}  # the usual case: a replay asks at every event
    profiles = store.load(due)
    outputs: list[Output] = []
    for user in due:
        if user not in profiles:
            continue
        try:
            outputs.extend(engine.advance(profiles[user], until))
        except Exception as error:
            if on_error is None:
                raise
            on_error(user, error)
            del profiles[user]
    store.drop_deadlines([u for u in due if u not in profiles], partition=partition)
    return outputs, profiles


def sweep(engine: Engine, store: ProfileStore, until: int, *, partition: int = 0) -> list[Output]:
    """Fire every stored user's deadlines up to ``until`` and save them."""
    outputs: list[Output] = []
    while True:
        fired, profiles = fire_due(engine, store, until, partition=partition)
        if not profiles:
            return outputs
        outputs.extend(fired)
        store.save(profiles.values(), partition=partition)


def _may_be_due(store: ProfileStore, until: int) -> bool:
    """Whether a sweep up to ``until`` may fire something: the memory store knows its
    earliest deadline without a sweep's calls (a replay's clock moves at most events)."""
    return not isinstance(store, MemoryStore) or not store.none_due(until)


@dataclass
class Replay:
    """Decodes lines, applies events and sweeps deadlines; ``clock`` is the stream's time;
    ``skipped`` counts by aggregate the values of the wrong type it skipped.

    With ``sent_at`` (epoch ms: when the lines were sent, such as now for a file of past
    events), an event dated more than ``max_future_skew_ms`` after it is a ``future`` bad
    line, as in the worker.
    """

    engine: Engine
    store: ProfileStore = field(default_factory=MemoryStore)
    max_event_bytes: int = MAX_EVENT_BYTES
    skipped: Counter[str] = field(default_factory=Counter)
    sent_at: int | None = None
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS
    event_clock: EventClock = field(default_factory=EventClock)

    forgotten: int = 0  # events under forgotten ids, older than the forget: ignored
    max_ids: int = DEFAULT_MAX_IDS

    @property
    def clock(self) -> int:
        """The stream's time: how far every user's deadlines have been fired."""
        return self.event_clock.time

    def run(
        self, lines: Iterable[bytes | str], *, flush: bool = True, until: int | None = None
    ) -> Iterator[Output | BadLine]:
        """Yield outputs (and bad lines) in stream order.

        With ``flush`` the deadlines up to the last event time are fired at the end, so the
        final profiles are as of the stream's end; with ``until`` (epoch ms), time then
        passes on to it (when later), as if the stream had gone quiet until then.
        """
        engine, store = self.engine, self.store
        # One event's skipped values, added up only when it applied (the usual: none).
        skipped: Counter[str] = Counter()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = decode_event(line, max_bytes=self.max_event_bytes)
            except EventError as error:
                yield BadLine(number, error.reason, error.message)
                continue
            if self.sent_at is not None:
                future = future_error(event, self.sent_at, self.max_future_skew_ms)
                if future is not None:
                    yield BadLine(number, future.reason, future.message)
                    continue
            if self.event_clock.observe(event.user_id, event.ts) and _may_be_due(store, self.clock):
                yield from sweep(engine, store, self.clock)
            if event.type in IDENTITY_EVENTS:
                yield from self._identity(number, event)
                continue
            target, profile = locate(engine, store, event.user_id)
            if target.left_behind(profile, event.ts):
                self.forgotten += 1  # left behind by a forget: it changes nothing
                continue
            # An event the engine fails on (a bug, not bad input) is a bad line, and the
            # replay goes on; the profile is not saved. (A store that hands out copies, as
            # Redis does, keeps it as before the event, like the worker; the memory store
            # hands out the profile itself, which may keep part of what the engine did: a
            # copy per event to undo that would cost a fifth of the replay's time.)
            try:
                outputs = self._applied(profile, event, skipped)
            except Exception as error:
                yield BadLine(number, ENGINE_ERROR, f"{type(error).__name__}: {error}")
                continue
            yield from outputs
            store.save([profile])
        if until is not None and until > self.clock:
            self.event_clock.time = until
        if flush:
            yield from sweep(engine, store, self.clock)

    def _applied(
        self, profile: Profile, event: BehaviourEvent, skipped: Counter[str]
    ) -> list[Output]:
        """The event's outputs (raises as the engine does); the values it skipped are
        counted once it applied. ``skipped`` is the run's one Counter, emptied after each
        event: a new one and an update per event cost more than the fold of a view."""
        try:
            outputs = self.engine.apply(profile, event, skipped=skipped)
            if skipped:
                self.skipped.update(skipped)
        finally:
            skipped.clear()
        return outputs

    def _identity(self, number: int, event: BehaviourEvent) -> Iterator[Output | BadLine]:
        """An identify or forget, done as the worker does it (outputs, then the store)."""
        identity = Identity(self.engine, self.store, self.max_ids)
        while True:
            try:
                change = identity.change(event, f"e:{event.event_id}")
            except IdentityError as error:
                yield BadLine(number, error.reason, error.message)
                return
            yield from change.outputs
            change.apply(self.store)
            if not change.recovered:
                return

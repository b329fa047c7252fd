"""Clocks and outliers: a far-future event is a dead letter, one event cannot move other
users' time, and wall-clock timers never run ahead of the applied events."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest
from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.progress import Progress
from streams.settings import Settings
from taggers.bundled import BUNDLED_RULES
from taggers.clock import MAX_FUTURE_SKEW_MS, EventClock, future_error
from taggers.durations import DAY_MS, HOUR_MS
from taggers.engine import Engine
from taggers.events import REASONS, decode_event, to_epoch_ms
from taggers.outputs import Output, output_to_dict
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.sources import EVENTS as EVENTS_SOURCE
from taggers.store import MemoryStore, ProfileStore
from tests.support.core import START_MS, make_event

RULES = load_rules(BUNDLED_RULES)
STREAM = list(simulate(SimulationConfig(users=60, days=150, seed=5)))
END = max(decode_event(line).ts for line in STREAM)
SENT = END + DAY_MS  # the stream was produced after its last event, as a backfill is
Y2099 = to_epoch_ms("2099-03-01T00:00:00Z")


def ticks(ts: int) -> list[str]:
    """Two users' events at ``ts``: the event clock reaches it (both runs end there)."""
    return [
        orjson.dumps(
            {"event_id": f"tick-{u}", "user_id": u, "type": "clock_tick", "ts": ts}
        ).decode()
        for u in ("tick-a", "tick-b")
    ]


def outlier(user: str, ts: int, amount: float = 5000.0) -> str:
    return orjson.dumps(
        {
            "event_id": f"outlier-{ts}",
            "user_id": user,
            "type": "purchase",
            "ts": ts,
            "props": {"amount": amount, "order_id": "typo"},
        }
    ).decode()


def replay(lines: list[str], sent_at: int | None = SENT) -> tuple[list[Output | BadLine], Replay]:
    run = Replay(Engine(RULES), MemoryStore(), sent_at=sent_at)
    return list(run.run([*lines, *ticks(END + 1)])), run


def per_user(items: list[Output | BadLine]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if not isinstance(item, BadLine):
            found.setdefault(item.user_id, []).append(output_to_dict(item))
    return found


def profiles(run: Replay) -> dict[str, dict[str, Any]]:
    store = run.store
    assert isinstance(store, MemoryStore)
    return {u: p.to_dict() for u in store.users() if (p := store.get(u)) is not None}


CLEAN_ITEMS, CLEAN_RUN = replay(STREAM)
CLEAN_OUTPUTS, CLEAN_PROFILES = per_user(CLEAN_ITEMS), profiles(CLEAN_RUN)
USERS = sorted(CLEAN_PROFILES)


def spend_90d(profile: Profile) -> float:
    return float(Engine(RULES).value_of("spend_90d", profile, profile.clock) or 0)


# --- the event clock -------------------------------------------------------------------------

OBSERVATIONS = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(min_value=1, max_value=10**13)), max_size=30
)


@given(OBSERVATIONS, st.randoms(use_true_random=False))
def test_the_event_clock_is_the_time_two_users_reached_whatever_the_order(
    observations: list[tuple[str, int]], rng: Any
) -> None:
    latest: dict[str, int] = {}
    clock = EventClock()
    for user, ts in observations:
        before = clock.time
        moved = clock.observe(user, ts)
        latest[user] = max(latest.get(user, 0), ts)
        assert moved == (clock.time != before) and clock.time >= before  # never back
        second = sorted(latest.values())[-2] if len(latest) > 1 else 0
        assert clock.time == second  # one user's events alone never move it
    shuffled = list(observations)
    rng.shuffle(shuffled)
    again = EventClock()
    for user, ts in shuffled:
        again.observe(user, ts)
    assert again.time == clock.time


# --- sweeps -----------------------------------------------------------------------------------


class Forwarding:
    """A store that is not the memory store, so that a replay sweeps at every move of its
    clock; it keeps its profiles in one."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_replay_skips_only_sweeps_that_fire_nothing() -> None:
    # The memory store's replay skips a sweep while its earliest deadline is later than
    # the clock; swept at every move of the clock, the same stream gives the same.
    forwarding = Forwarding()
    swept = Replay(Engine(RULES), cast(ProfileStore, forwarding), sent_at=SENT)
    assert list(swept.run([*STREAM, *ticks(END + 1)])) == CLEAN_ITEMS
    assert {u: p.to_dict() for u, p in forwarding.inner.load(USERS).items()} == CLEAN_PROFILES


def test_the_memory_store_says_when_no_deadline_can_be_due() -> None:
    store = MemoryStore()
    assert store.none_due(Y2099)  # no deadline at all
    store.save([Profile("a", due=100)])
    assert store.none_due(99) and not store.none_due(100)
    store.save([Profile("a", due=500)])  # the index's entry at 100 is stale now
    assert not store.none_due(100)  # a stale entry may cost a sweep, never skip a deadline
    assert store.due(100) == [] and store.none_due(499)  # that sweep dropped it


# --- far-future events: dead letters -------------------------------------------------------


def test_an_event_past_the_skew_after_it_was_sent_is_a_future_dead_letter() -> None:
    assert "future" in REASONS
    event = make_event("purchase", day=0, amount=1)
    assert future_error(event, event.ts - MAX_FUTURE_SKEW_MS, MAX_FUTURE_SKEW_MS) is None
    error = future_error(event, event.ts - MAX_FUTURE_SKEW_MS - 1, MAX_FUTURE_SKEW_MS)
    assert error is not None and error.reason == "future"
    assert "2026-01-01T00:00:00.000Z" in error.message and "at most 1 h" in error.message
    assert Settings().max_future_skew * 1000 == MAX_FUTURE_SKEW_MS


def test_a_2099_event_in_a_2026_stream_changes_nobody_and_the_users_windows_still_count() -> None:
    user = next(u for u in USERS if spend_90d(Profile.from_dict(CLEAN_PROFILES[u])) > 0)
    middle = len(STREAM) // 2
    stream = [*STREAM[:middle], outlier(user, Y2099), *STREAM[middle:]]
    items, run = replay(stream)
    bad = [item for item in items if isinstance(item, BadLine)]
    assert [(b.line, b.reason) for b in bad] == [(middle + 1, "future")]
    assert per_user(items) == CLEAN_OUTPUTS  # every user, the outlier's own included
    assert profiles(run) == CLEAN_PROFILES
    assert run.clock == END + 1


def test_purchases_after_a_users_own_future_event_count_in_their_windows() -> None:
    lines = [
        outlier("u1", Y2099),
        *(make_event("purchase", day=d, amount=100).model_dump_json() for d in (10, 20, 30)),
    ]
    run = Replay(Engine(RULES), MemoryStore(), sent_at=START_MS + 31 * DAY_MS)
    bad = [item for item in run.run(lines) if isinstance(item, BadLine)]
    assert [b.reason for b in bad] == ["future"]
    store = run.store
    assert isinstance(store, MemoryStore)
    profile = store.get("u1")
    assert profile is not None and spend_90d(profile) == 300
    assert profile.clock == START_MS + 30 * DAY_MS


@settings(max_examples=12, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(STREAM)),
    user=st.sampled_from(USERS),
    ahead_days=st.integers(min_value=1, max_value=400),
)
def test_one_early_event_that_is_not_future_moves_no_other_users_time(
    position: int, user: str, ahead_days: int
) -> None:
    """An outlier dated before the stream was sent (so not a dead letter), but months ahead
    of every other event: the event clock waits for a second user, so every other user's
    outputs and profile are those of the stream without it."""
    stream = [*STREAM[:position], outlier(user, END + ahead_days * DAY_MS), *STREAM[position:]]
    items, run = replay(stream, sent_at=END + 500 * DAY_MS)
    assert not any(isinstance(item, BadLine) for item in items)
    outputs, found = per_user(items), profiles(run)
    for other in USERS:
        if other != user:
            assert outputs.get(other) == CLEAN_OUTPUTS.get(other), other
            assert found[other] == CLEAN_PROFILES[other], other
    assert run.clock == END + 1


# --- the worker's check ----------------------------------------------------------------------


def record(offset: int, ts: int, sent: int | None, user: str = "u1") -> Record:
    event = make_event("purchase", user=user, amount=10).model_copy(update={"ts": ts})
    return Record(0, offset, event.model_dump_json().encode(), user.encode(), timestamp=sent)


def test_the_worker_judges_an_events_time_by_its_kafka_timestamp_and_its_own_clock() -> None:
    now = START_MS + 10 * DAY_MS
    pipeline = Pipeline(
        Engine(RULES), MemoryStore(copies=True), 65536, wall_clock=lambda: now / 1000
    )
    sent = START_MS  # produced ten days ago (a backlog): judged by when it was sent
    records = [
        record(0, sent + HOUR_MS, sent),  # within the skew of its send time: applied
        record(1, sent + HOUR_MS + 1, sent),  # past it, though long before now: future
        record(2, now + 2 * DAY_MS, now + 2 * DAY_MS),  # a producer whose clock is ahead
        record(3, now + HOUR_MS + 1, None),  # no Kafka timestamp: the worker's clock
        record(4, Y2099, sent, user="u2"),
    ]
    batch = pipeline.prepare(0, records)
    assert [(d.record.offset, d.reason) for d in batch.dead] == [
        (1, "future"),
        (2, "future"),
        (3, "future"),
        (4, "future"),
    ]
    assert batch.offsets == {"u1": {"0": 0}}
    letter = orjson.loads(batch.dead[-1].to_json({EVENTS_SOURCE: "events"}))
    assert letter["reason"] == "future" and "2099-03-01" in letter["error"]
    assert pipeline.watermark(0) is None  # dead letters never move the event clock


# --- wall-clock timers under lag -------------------------------------------------------------

EVENTS, REKEYED = TP("events", 0), TP("rekeyed", 0)


def message(tp: TP, offset: int, sent_s: float | None) -> Message:
    return Message(tp.topic, tp.partition, offset, sent_s, 0, None, None, b"{}", None)  # type: ignore[arg-type]


def test_a_lagging_partitions_timers_stop_at_its_latest_applied_message() -> None:
    now = 1_800_000_000_000
    progress = Progress()
    progress.renew(7)
    # Nothing handed over yet: the consumer's position is the committed offset.
    assert progress.reached(EVENTS, end=10, position=10, now=now) == now
    assert progress.reached(EVENTS, end=12, position=10, now=now) is None
    batch = [message(EVENTS, n, (now - 5000 + n) / 1000) for n in range(10, 13)]
    progress.took(EVENTS, batch)
    assert progress.reached(EVENTS, end=13, position=13, now=now) is None  # in flight
    progress.done(EVENTS, batch)
    assert progress.reached(EVENTS, end=13, position=None, now=now) == now  # caught up
    # More is on the topic: up to when the latest applied message was sent.
    assert progress.reached(EVENTS, end=20, position=None, now=now) == now - 5000 + 12
    assert progress.reached(EVENTS, end=None, position=None, now=now) == now - 5000 + 12
    progress.done(EVENTS, [message(EVENTS, 13, None)])  # no timestamp: the time stays
    assert progress.reached(EVENTS, end=20, position=None, now=now) == now - 5000 + 12
    # A rebalance: what was applied before may have moved on under another worker.
    progress.renew(8)
    assert progress.reached(EVENTS, end=20, position=None, now=now) is None
    assert progress.reached(REKEYED, end=0, position=0, now=now) == now


@pytest.mark.parametrize("sent_s", [None, -1.0])
def test_a_message_without_a_timestamp_moves_no_timer(sent_s: float | None) -> None:
    progress = Progress()
    progress.done(EVENTS, [message(EVENTS, 0, sent_s)])
    assert progress.reached(EVENTS, end=5, position=None, now=1000) is None

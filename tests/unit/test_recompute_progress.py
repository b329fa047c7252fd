"""How far the background recompute has come, as ``tagger rules status`` and the worker's
log say it: from the progress kept in Redis and the estimate of users made at its start."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

import pytest

from streams import live_rules as live_rules_module
from streams.live_rules import PROGRESS_LOG_EVERY, LiveRules
from streams.rules_board import Recompute, RulesBoard, recompute_progress
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES
from taggers.pipeline import Pipeline
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore

RULES = load_rules(BUNDLED_RULES)

START = "2026-11-28T04:00:00+00:00"


def running(scanned: int, after: str) -> Recompute:
    return Recompute("v2", "v1", START, scanned=scanned, updated_at=after)


def test_rate_and_time_left_from_the_start_to_the_last_step() -> None:
    progress = running(4000, "2026-11-28T04:00:05+00:00")
    assert (
        recompute_progress(progress, 10_000)
        == "recompute: 40% (4,000 users of 10,000 users), 800 users/s, 8 s left"
    )
    # Without an estimate (rules with no lifecycle): how many, and the rate.
    assert recompute_progress(progress, None) == "recompute: 4,000 users, 800 users/s"


def test_users_beyond_the_estimate_never_make_it_more_than_done() -> None:
    """Users join during a recompute, and a scan may return one twice."""
    progress = running(10_400, "2026-11-28T04:00:13+00:00")
    assert (
        recompute_progress(progress, 10_000)
        == "recompute: 100% (10,400 users of 10,400 users), 800 users/s, 0 s left"
    )


def test_a_finished_recompute_says_how_many_and_how_fast() -> None:
    done = Recompute("v2", "v1", START, scanned=12_000, finished_at="2026-11-28T04:00:10+00:00")
    assert recompute_progress(done, 10_000) == "recompute: 12,000 users, 1,200 users/s"


def test_before_its_first_step_there_is_nothing_to_say() -> None:
    assert recompute_progress(Recompute("v2", "v1", START), 10_000) is None
    assert recompute_progress(Recompute("v2", None, "t0", updated_at="t1"), 10) is None


class Board:
    """What the worker asks of the board for the estimate and the log line."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def save_total(self, version: str, users: int) -> None:
        self.totals[version] = users

    def total(self, version: str) -> int | None:
        return self.totals.get(version)


def live_rules(store: MemoryStore, board: Board) -> LiveRules:
    async def send(prepared: object) -> None:
        raise AssertionError("nothing is sent here")

    engine = Engine(RULES)
    return LiveRules(
        RULES,
        BUNDLED_RULES,
        Pipeline(engine, store, MAX_EVENT_BYTES),
        store,
        cast(RulesBoard, board),
        asyncio.Lock(),
        send,
        recompute_rate=1000,
    )


def test_the_worker_estimates_the_users_and_logs_progress_now_and_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, board = MemoryStore(copies=True), Board()
    lines = list(simulate(SimulationConfig(users=4, days=30, seed=2)))
    list(Replay(Engine(RULES), store).run(lines))
    worker = live_rules(store, board)
    worker._estimate_total("v2")
    assert board.totals == {"v2": len(list(store.users()))} == {"v2": 4}  # one stage each
    progress = running(3, "2026-11-28T04:00:05+00:00")
    with caplog.at_level(logging.INFO, logger=live_rules_module.log.name):
        asyncio.run(worker._log_progress(progress))  # just started: not yet
        worker._progress_logged = time.monotonic() - PROGRESS_LOG_EVERY
        asyncio.run(worker._log_progress(progress))
        asyncio.run(worker._log_progress(progress))  # just logged: not again
    assert [record.getMessage() for record in caplog.records] == [
        "recompute: 75% (3 users of 4 users), 1 users/s, 2 s left (version v2)"
    ]

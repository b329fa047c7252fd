"""How far the background recompute has come, as ``tagger rules status`` and the worker's
log say it: from the progress kept in Redis and the estimate of users made at its start."""

from __future__ import annotations

from streams.rules_board import Recompute, recompute_progress

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

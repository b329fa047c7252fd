"""What a rebalance does to a commit: the offsets stay uncommitted and the worker goes on.

Group churn end to end (a paused worker, a frozen Redis) is in test_pipeline; these pin
the commit path's answers to each error aiokafka raises there, which a real broker only
gives at moments a test cannot choose.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError, GroupAuthorizationFailedError, IllegalStateError
from faust.types import TP

from streams.transport import _ConsumerThread

MINE, THEIRS = TP("events", 0), TP("events", 1)


class FakeConsumer:
    """aiokafka's consumer, as far as a commit goes."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.committed: list[dict[Any, Any]] = []

    async def commit(self, offsets: dict[Any, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.committed.append(offsets)


def commit(error: Exception | None) -> tuple[bool, list[BaseException], FakeConsumer]:
    """Commit offsets of an assigned and an unassigned partition through our consumer
    thread, with aiokafka answering ``error``: the result, the crashes, the consumer."""
    consumer = FakeConsumer(error)
    thread: Any = object.__new__(_ConsumerThread)  # only what _commit uses
    crashes: list[BaseException] = []

    async def crash(reason: BaseException) -> None:
        crashes.append(reason)

    thread._ensure_consumer = lambda: consumer
    thread.assignment = lambda: {MINE}
    thread.tp_last_committed_at = {}
    thread.log = logging.getLogger("test")
    thread.crash = crash
    result = asyncio.run(thread._commit({MINE: 10, THEIRS: 20}))
    return result, crashes, consumer


def test_a_commit_commits_the_assigned_partitions_only() -> None:
    done, crashes, consumer = commit(None)
    assert done and not crashes
    [offsets] = consumer.committed
    assert {(tp.topic, tp.partition): value.offset for tp, value in offsets.items()} == {
        ("events", 0): 10
    }


@pytest.mark.parametrize(
    "error",
    [
        CommitFailedError("Commit cannot be completed since the group has already rebalanced"),
        CommitFailedError("the member was removed from the group"),  # Faust crashed on this
        IllegalStateError("No partitions assigned"),  # and on these
        IllegalStateError("Partition TopicPartition(topic='events', partition=0) is not assigned"),
    ],
)
def test_a_commit_refused_by_a_rebalance_is_skipped_not_a_crash(error: Exception) -> None:
    done, crashes, _ = commit(error)
    assert not done and not crashes


def test_other_commit_errors_still_stop_the_worker() -> None:
    error = GroupAuthorizationFailedError("tagger")
    done, crashes, _ = commit(error)
    assert not done and crashes == [error]

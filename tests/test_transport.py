"""The hand-over from Faust's fetcher to the agent, on Faust's own queues (no servers)."""

from __future__ import annotations

import asyncio

import pytest
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from streams.transport import put_unless_cleared


def agent_queue() -> ThrowableQueue[str]:
    """A queue as Faust gives an agent: room for one fetch, flow on."""
    flow = FlowControlEvent()
    flow.resume()
    return ThrowableQueue(maxsize=1, flow_control=flow)


def full_queue() -> ThrowableQueue[str]:
    queue = agent_queue()
    queue.put_nowait("the fetch the agent has not taken yet")
    return queue


def test_a_put_with_room_is_in() -> None:
    async def run() -> tuple[bool, int]:
        queue = agent_queue()
        return await put_unless_cleared(queue.put("fetch")), queue.qsize()

    assert asyncio.run(run()) == (True, 1)


def test_a_put_waiting_when_a_rebalance_clears_the_queue_is_dropped_not_raised() -> None:
    async def run() -> tuple[bool, int]:
        queue = full_queue()
        waiting = asyncio.ensure_future(put_unless_cleared(queue.put("the next fetch")))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # no room: it waits for the agent
        queue.clear()  # what Faust's flow_control.clear() does to every agent queue
        return await waiting, queue.qsize()

    # Before: the CancelledError reached Faust's fetcher, which died in its restart.
    assert asyncio.run(run()) == (False, 0)


def test_the_caller_being_cancelled_still_propagates() -> None:
    async def run() -> None:
        queue = full_queue()
        waiting = asyncio.ensure_future(put_unless_cleared(queue.put("the next fetch")))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the worker is stopping
        await waiting

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())

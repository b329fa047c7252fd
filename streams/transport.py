"""Faust's aiokafka transport with the fetch wait as a setting and batch delivery.

Fetch wait: Faust hard-codes ``fetch_max_wait_ms=1500``. A broker may hold a fetch that
long even when data is waiting (tansu does), which puts up to 1.5 s on every event's
latency; the wait is ``TAGGER_FETCH_MAX_WAIT_MS`` instead.

Batch delivery: Faust hands fetched messages to streams one at a time, and each hand-over
awaits ``wait_first(callback(message), suspend_flow.wait())``, which creates four asyncio
tasks per message; behind it come a channel queue, an Event and the stream's iterator,
again per message. For topics the app lists in ``TaggerApp.batch_topics`` this consumer
hands over a whole fetch as one :class:`Fetch` instead (its messages grouped by
partition), through ``TaggerApp.on_fetch``. Everything else about the loop is Faust's:
read offsets, offset gaps, commit cadence, flow control (a hand-over still ends when flow
is suspended for a rebalance, and the messages are fetched again from the committed
offsets). A hand-over that a rebalance cancels is dropped the same way instead of
stopping the worker (``Consumer._hand_over``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast

import aiokafka
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from mode import Service, ServiceT


@dataclass(frozen=True, slots=True)
class Fetch:
    """What one fetch brought: per topic partition, consecutive messages in offset order."""

    parts: dict[TP, list[Message]]


FetchHandler = Callable[[Fetch], Awaitable[None]]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher: set it before that.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # Faust's, except for what a rebalance does to a commit. Faust crashes the whole
        # worker on any commit error but a CommitFailedError that says "already
        # rebalanced"; aiokafka also refuses a commit while the group hands out a new
        # assignment (IllegalStateError: no partitions assigned / partition not
        # assigned), and words its CommitFailedError as it likes. Those offsets are simply
        # not committed: the next owner redoes from the last commit, outputs repeat with
        # the same ids and Redis refuses what it has. Other errors (authorisation, say)
        # still stop the worker.
        consumer = self._ensure_consumer()
        now = monotonic()
        assigned = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        try:
            self.tp_last_committed_at.update(dict.fromkeys(committable, now))
            await consumer.commit(
                {
                    driver.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
                    for tp, offset in committable.items()
                }
            )
        except (CommitFailedError, IllegalStateError) as error:
            self.log.warning("offsets not committed, the group is rebalancing: %s", error)
            return False
        except Exception as error:
            self.log.exception("Got exception: %r\nCurrent assignment: %r", error, assigned)
            await self.crash(error)
            return False
        return True


class Consumer(driver.Consumer):
    """The aiokafka consumer, with our consumer thread and batch delivery."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        # Faust's Consumer._drain_messages, with messages of batch topics collected per
        # partition and handed over once per fetch instead of once per message.
        batch_topics: frozenset[str] = getattr(self.app, "batch_topics", frozenset())
        on_fetch: FetchHandler | None = getattr(self.app, "on_fetch", None)
        callback = self.callback
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched: dict[TP, list[Message]] = {}
                await self.sleep(0)  # getmany may otherwise never yield to the loop
                if self.should_stop:
                    continue
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    read_offset = get_read_offset(tp)
                    if read_offset is not None and offset < read_offset:
                        continue  # already delivered before a seek
                    if read_offset and offset - read_offset > 1 and acks_enabled_for(tp.topic):
                        await self._add_gap(tp, read_offset + 1, offset)
                    if on_fetch is not None and tp.topic in batch_topics:
                        fetched.setdefault(tp, []).append(message)
                    else:
                        await self._maybe_commit()
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                self.diag.unset_flag(CONSUMER_FETCHING)
                if fetched and on_fetch is not None and not self.suspend_flow.is_set():
                    await self._maybe_commit()
                    await self._hand_over(on_fetch, Fetch(fetched))
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, on_fetch: FetchHandler, fetch: Fetch) -> None:
        """Hand a fetch to the agent; dropped if a rebalance suspends the flow first or
        clears the agent's queue under it."""
        try:
            await self.wait_first(on_fetch(fetch), self.suspend_flow.wait())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling() or self.transport.app.should_stop:
                raise  # the fetcher itself is being stopped
            # A rebalance cleared the agent's queue, and clearing cancels a put waiting on
            # it (mode's ThrowableQueue.clear). Raised on, this CancelledError makes
            # Faust's Fetcher "crash" for a restart by its supervisor, which it has none
            # of: the whole worker stopped (and hung, still in its group). Nothing of
            # the fetch was acked, and the assignment that ends the rebalance seeks to
            # the committed offsets, so dropping it loses nothing.
            self.log.info("a rebalance cancelled the hand-over of a fetch; it is fetched again")

    async def _maybe_commit(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()


class Transport(driver.Transport):
    """The aiokafka transport, with our consumer."""

    Consumer = Consumer

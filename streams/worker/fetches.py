"""Fetch handling: the worker's delivery guarantee, one fetch at a time.

The transport hands the agent a whole fetch (see ``streams.transport``). Per fetch:
decode and apply each partition's batch (``Pipeline.prepare``), send all outputs and
dead letters and wait for the broker's acks, save each batch to Redis in one round trip,
then ack the messages so that Faust commits their offsets. A crash anywhere redoes the
fetch: outputs repeat with the same ids and Redis refuses what it already has. While
Redis is away every store call waits (``redis_call``): nothing is saved or acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Set

from faust.types import TP, Message

from streams import metrics
from streams.progress import Progress, sent_at
from streams.redis_retry import redis_call
from streams.transport import Fetch
from streams.worker.kafka import Group
from streams.worker.routing import Topics
from streams.worker.sending import Sender
from taggers.pipeline import Pipeline, Prepared, Record
from taggers.store import StoreConflictError

log = logging.getLogger(__name__)
MAX_CONFLICT_RETRIES = 5

AfterApply = Callable[[Fetch], Awaitable[None]]
OnRebalance = Callable[[set[int]], None]


class FetchHandling:
    """Applies the fetches of one worker: ``take`` is the agent's work for one fetch.

    ``pipeline`` runs the batches through the engine and its store (any
    ``taggers.store.ProfileStore`` that hands out copies; a conflict is a
    ``StoreConflictError``). ``lock`` is shared with the sweeps and rule reloads of the
    worker: they take turns on the store. ``after_apply`` runs under the lock once a
    fetch is saved, before it is acked (the event-clock timers). ``on_rebalance`` is told,
    before the first fetch of each group generation is applied, the partitions this
    worker now holds of every input topic (the store drops what it kept of the others).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        topics: Topics,
        sender: Sender,
        group: Group,
        progress: Progress,
        lock: asyncio.Lock,
        *,
        after_apply: AfterApply | None = None,
        on_rebalance: OnRebalance | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.topics = topics
        self.sender = sender
        self.group = group
        self.progress = progress
        self.lock = lock
        self.after_apply = after_apply
        self.on_rebalance = on_rebalance
        self.generation: int | None = None  # of the last fetch taken

    async def take(self, fetch: Fetch) -> None:
        """Apply a fetch and ack its messages; one fetched before a rebalance is skipped
        (the seek after it fetches them again)."""
        group = self.group
        messages = [message for part in fetch.parts.values() for message in part]
        if messages[0].generation_id != group.consumer_generation_id:
            return
        consumer = group.consumer
        if self.generation != group.consumer_generation_id:
            self.generation = group.consumer_generation_id
            if self.on_rebalance is not None:
                self.on_rebalance(self.held(consumer.assignment()))
        for message in messages:
            consumer.track_message(message)  # a rebalance waits for it to be acked
        self.progress.renew(group.consumer_generation_id)
        for tp, part in fetch.parts.items():
            self.progress.took(tp, part)  # in hand: its partition is not caught up
        async with self.lock:
            await self.apply(fetch)
            if self.after_apply is not None:
                await self.after_apply(fetch)
            self.progress.renew(group.consumer_generation_id)
            for tp, part in fetch.parts.items():
                self.progress.done(tp, part)
        for message in messages:
            consumer.ack(message)

    async def apply(self, fetch: Fetch) -> None:
        """Prepare each partition's batch, send all their outputs at once, then save each
        batch (the caller holds the lock). A batch that stops short (before an identity
        change, which is a batch of its own) is finished before the rest is prepared."""
        started = time.perf_counter()
        ready: list[tuple[TP, Prepared, list[Message]]] = []
        touched: set[str] = set()  # users of the batches in ready
        for tp, messages in fetch.parts.items():
            rest = messages
            while rest:
                batch = await redis_call(self.prepare, tp, rest)
                if not touched.isdisjoint(batch.profiles):
                    # A user of an earlier batch again (a re-keyed user, say): this batch
                    # read the profile before that one's changes. Finish those, then read
                    # again.
                    await self._finish(ready)
                    ready, touched = [], set()
                    batch = await redis_call(self.prepare, tp, rest)
                taken, rest = rest[: batch.taken], rest[batch.taken :]
                ready.append((tp, batch, taken))
                touched.update(batch.profiles)
                if rest or batch.change is not None:
                    await self._finish(ready)
                    ready, touched = [], set()
        await self._finish(ready)
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)

    def held(self, assignment: Set[TP]) -> set[int]:
        """The partitions of which this worker holds every input topic's."""
        inputs = self.topics.input_names
        held: dict[int, int] = {}
        for tp in assignment:
            if tp.topic in inputs:
                held[tp.partition] = held.get(tp.partition, 0) + 1
        return {partition for partition, count in held.items() if count == len(inputs)}

    def prepare(self, tp: TP, messages: list[Message]) -> Prepared:
        """A partition's messages, decoded and applied to profiles read from the store."""
        records = [
            Record(tp.partition, m.offset, m.value, m.key, m.headers or (), sent_at(m))
            for m in messages
        ]
        return self.pipeline.prepare(tp.partition, records, source=self.topics.source_of(tp.topic))

    async def _finish(self, ready: list[tuple[TP, Prepared, list[Message]]]) -> None:
        if not ready:
            return
        await self.sender.send(*(batch for _, batch, _ in ready))
        for tp, first, messages in ready:
            batch = await self.save(tp, first, messages)
            count_batch(tp.topic, messages, batch)
            log.debug(
                "batch applied",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "events": len(messages),
                    "outputs": len(batch.outputs),
                    "dead": len(batch.dead),
                },
            )

    async def save(self, tp: TP, batch: Prepared, messages: list[Message]) -> Prepared:
        """Save a prepared (and sent) batch of these messages; if another writer changed
        its profiles first, prepare it again, send that, and save it; the batch saved."""
        for attempt in range(1, MAX_CONFLICT_RETRIES + 1):
            try:
                await redis_call(self.pipeline.save, batch)
            except StoreConflictError as conflict:
                # Another writer (a worker that lost this partition, or one applying an
                # event under a linked id) got there first: read again and redo; what
                # Redis already has is skipped by offset.
                metrics.STORE_CONFLICTS.inc()
                log.warning("batch conflict, attempt %d: %s", attempt, conflict)
            else:
                if batch.taken >= len(messages):
                    return batch
                # Done again, it first finished an identity change a crash had stopped
                # (a batch that takes nothing): now the messages themselves.
                messages = messages[batch.taken :]
            batch = await redis_call(self.prepare, tp, messages)
            await self.sender.send(batch)
        raise RuntimeError(f"{tp}: profiles keep changing under us")


def count_batch(topic: str, messages: list[Message], batch: Prepared) -> None:
    """Count a saved batch, its events by type and outcome, and how long they took from
    their Kafka timestamp to Redis."""
    metrics.BATCHES.labels(topic).inc()
    metrics.BATCH_SIZE.observe(len(messages))
    for (event_type, outcome), count in batch.outcomes.items():
        metrics.EVENTS.labels(event_type, outcome).inc(count)
    for aggregate, count in batch.skipped.items():
        metrics.AGGREGATE_SKIPPED_VALUES.labels(aggregate).inc(count)
    for alert, count in batch.suppressed.items():
        metrics.ALERTS_SUPPRESSED.labels(alert).inc(count)
    saved = time.time()
    for message in messages:
        metrics.EVENT_TO_REDIS_SECONDS.observe(max(0.0, saved - message.timestamp))

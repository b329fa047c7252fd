"""Timers: firing users' deadlines, by the event clock or by the wall clock.

On the event clock, a partition's deadlines fire up to its events' time after each
fetch, before the fetch is acked: a worker that takes over the partition cannot miss
them. On the wall clock, a periodic sweep fires each assigned partition's deadlines up to
now, or, while the partition lags, up to when its latest applied message was sent
(``streams.progress``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from streams import metrics
from streams.progress import Progress
from streams.redis_retry import redis_call
from streams.transport import Fetch
from streams.worker.kafka import Group
from streams.worker.routing import Topics
from streams.worker.sending import Sender
from taggers.pipeline import Pipeline
from taggers.store import StoreConflictError

log = logging.getLogger(__name__)


class Timers:
    """Deadline sweeps of one worker; they take the worker's ``lock`` per sweep batch."""

    def __init__(
        self,
        pipeline: Pipeline,
        sender: Sender,
        lock: asyncio.Lock,
        *,
        group: Group,
        progress: Progress,
        topics: Topics,
    ) -> None:
        self.pipeline = pipeline
        self.sender = sender
        self.lock = lock
        self.group = group
        self.progress = progress
        self.topics = topics

    async def fire_due_batch(self, partition: int, now: int) -> bool:
        """Fire up to one sweep's worth of a partition's deadlines due by ``now`` (the
        caller holds the lock); whether there were any."""
        batch = await redis_call(self.pipeline.sweep, partition, now)
        metrics.TIMER_SWEEPS.inc()
        if not batch.profiles:
            return False
        metrics.DEADLINES_FIRED.inc(len(batch.profiles))
        for alert, count in batch.suppressed.items():
            metrics.ALERTS_SUPPRESSED.labels(alert).inc(count)
        await self.sender.send(batch)
        try:
            await redis_call(self.pipeline.save, batch)
        except StoreConflictError as conflict:
            metrics.STORE_CONFLICTS.inc()
            log.warning("sweep skipped users changed meanwhile: %s", conflict)
        return True

    async def after_fetch(self, fetch: Fetch) -> None:
        """On the event clock: fire what a fetch's events made due (the caller holds the
        lock, and acks the fetch after this)."""
        for partition in sorted({tp.partition for tp in fetch.parts}):
            now = self.pipeline.watermark(partition)
            while now is not None and await self.fire_due_batch(partition, now):
                pass

    async def sweep_by_wall_clock(self) -> None:
        """Fire each assigned partition's deadlines up to the wall clock, or, while the
        partition lags, up to when its latest applied message was sent (``Progress``). The
        input sources share the partition's deadline set: all must have reached the
        time."""
        reached = await self._reached()
        for partition, until in sorted(reached.items()):
            while until is not None:
                async with self.lock:  # per sweep batch, so that events are not held up long
                    if not await self.fire_due_batch(partition, until):
                        break

    async def _reached(self) -> dict[int, int | None]:
        """Per assigned partition, up to when its deadlines may fire (None: not yet)."""
        consumer, progress = self.group.consumer, self.progress
        assigned = self.topics.assigned(consumer.assignment())
        if not assigned:
            return {}
        now = int(time.time() * 1000)  # before the ends: what is sent later is after it
        try:
            ends = await consumer.highwaters(*assigned)
            progress.renew(self.group.consumer_generation_id)
            positions = {
                tp: await consumer.position(tp)
                for tp in assigned
                if tp not in progress.applied and tp not in progress.taken
            }
        except Exception as error:  # the broker may be away: fire only what applied events allow
            log.warning("end offsets unknown, timers follow the applied events: %s", error)
            ends, positions = {}, {}
        reached: dict[int, int | None] = {}
        for tp in assigned:
            at = progress.reached(tp, ends.get(tp), positions.get(tp), now)
            if tp.partition in reached:
                other = reached[tp.partition]
                at = None if at is None or other is None else min(at, other)
            reached[tp.partition] = at
        return reached

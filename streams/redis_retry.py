"""Calls to Redis that wait out an outage, for the worker's own work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from streams import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
MAX_BACKOFF_SECONDS = 5.0
# Redis away, or a Redis Cluster between states (a node down, a failover, slots moving).
REDIS_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)


async def redis_call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store call until Redis answers, backing off while it is away.

    The call runs on the event loop itself, not in a thread: it is CPU-bound Python (the
    engine) plus sub-millisecond loopback round trips, and a worker thread would fight the
    loop for the GIL on every socket wake-up (measured: 4x slower). The Redis client's
    socket timeout bounds how long a hung Redis can block the loop.

    Nothing moves on meanwhile: the batch is neither saved nor acked, so no offset is
    committed for work Redis does not have.
    """
    delay = 0.1
    while True:
        try:
            result = function(*args, **kwargs)
        except REDIS_DOWN as error:
            metrics.REDIS_ERRORS.labels(type(error).__name__).inc()
            metrics.REDIS_UP.set(0)
            log.warning("redis unreachable, retrying in %.1fs: %s", delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            metrics.REDIS_RETRIES.inc()
        else:
            metrics.REDIS_UP.set(1)
            return result

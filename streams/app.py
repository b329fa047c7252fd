"""The Faust worker: behaviour events in, profiles in Redis, decisions out. Wiring only.

Per batch of a partition: decode and apply (``Pipeline.prepare``), send outputs and dead
letters and wait for the broker's acks, save to Redis in one round trip, then ack the
messages so that Faust commits their offsets. A crash anywhere redoes the batch: outputs
repeat with the same ids and Redis refuses what it already has.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import faust
import orjson
import redis

from streams.pipeline import Pipeline, Prepared, Record
from streams.transport import Transport
from taggers.engine import Engine
from taggers.outputs import output_to_dict
from taggers.redis_store import RedisStore, StoreConflictError, connect
from taggers.ruleset import RuleSet
from taggers.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
MAX_BACKOFF_SECONDS = 5.0
MAX_CONFLICT_RETRIES = 5
DEFAULT_PAGE = 100
MAX_PAGE = 10_000


class TaggerApp(faust.App):
    """A Faust app whose consumer takes its fetch wait from our settings."""

    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def create_app(settings: Settings, rules: RuleSet) -> TaggerApp:
    """Build the worker app for these settings and rules."""
    app = TaggerApp(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=str(Path(tempfile.gettempdir(), f"tagger-{settings.app_id}")),
        topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        topic_disable_leader=True,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(settings.events_topic, partitions=settings.partitions, **raw)
    outputs = {
        "tag_change": app.topic(settings.tag_changes_topic, **raw),
        "transition": app.topic(settings.transitions_topic, **raw),
        "alert": app.topic(settings.alerts_topic, **raw),
    }
    dlq = app.topic(settings.dlq_topic, **raw)
    rekeyed = app.topic(settings.rekeyed_topic, partitions=settings.partitions, **raw)
    store = RedisStore(connect(settings.redis_url), prefix=settings.redis_prefix)
    pipeline = Pipeline(Engine(rules), store, settings.max_event_bytes)
    lock = asyncio.Lock()  # batches and sweeps of this worker take turns on Redis

    async def send(batch: Prepared) -> None:
        pending = [await dlq.send(value=dead.to_json(settings.events_topic)) for dead in batch.dead]
        for user_id, value in batch.rekey:
            pending.append(await rekeyed.send(key=user_id.encode(), value=value))
        for output in batch.outputs:
            pending.append(
                await outputs[output.kind].send(
                    key=output.user_id.encode(), value=orjson.dumps(output_to_dict(output))
                )
            )
        if pending:
            await asyncio.gather(*pending)  # the broker has them before Redis moves on

    async def handle(partition: int, records: list[Record], source: str, check_keys: bool) -> None:
        for attempt in range(1, MAX_CONFLICT_RETRIES + 1):
            batch = await redis_call(
                pipeline.prepare, partition, records, source=source, check_keys=check_keys
            )
            await send(batch)
            try:
                await redis_call(pipeline.save, batch)
                break
            except StoreConflictError as conflict:
                # Another writer (a worker that lost this partition) got there first:
                # read again and redo; what Redis already has is skipped by offset.
                log.warning("batch conflict, attempt %d: %s", attempt, conflict)
        else:
            raise RuntimeError(f"partition {partition}: profiles keep changing under us")
        log.debug(
            "batch applied",
            extra={
                "partition": partition,
                "events": len(records),
                "outputs": len(batch.outputs),
                "dead": len(batch.dead),
                "skipped": batch.skipped,
            },
        )

    async def consume(stream: Any, source_prefix: str, check_keys: bool) -> None:
        async for taken in stream.noack_take(settings.batch_size, within=settings.batch_wait):
            by_partition: dict[int, list[Record]] = defaultdict(list)
            for event in taken:
                message = event.message
                by_partition[message.partition].append(
                    Record(message.partition, message.offset, message.value, message.key)
                )
            async with lock:
                for partition, records in by_partition.items():
                    await handle(partition, records, f"{source_prefix}{partition}", check_keys)
            for event in taken:
                await stream.ack(event)

    @app.agent(events)
    async def process(stream: Any) -> None:  # a faust.Stream: its noack_take is not typed
        await consume(stream, "", check_keys=True)

    @app.agent(rekeyed)
    async def process_rekeyed(stream: Any) -> None:
        # Keyed by user id by construction; its offsets are kept apart as r0, r1, ...
        await consume(stream, "r", check_keys=False)

    async def sweep() -> None:
        assigned = {
            tp.partition
            for tp in app.consumer.assignment()
            if tp.topic in (settings.events_topic, settings.rekeyed_topic)
        }
        for partition in sorted(assigned):
            if settings.clock == "wall":
                now = int(time.time() * 1000)
            elif partition in pipeline.watermarks:
                now = pipeline.watermarks[partition]  # both topics' events of this partition
            else:
                continue  # event time: nothing seen on this partition yet
            while True:
                async with lock:
                    batch = await redis_call(pipeline.sweep, partition, now)
                    if not batch.profiles:
                        break
                    await send(batch)
                    try:
                        await redis_call(pipeline.save, batch)
                    except StoreConflictError as conflict:
                        log.warning("sweep skipped users changed meanwhile: %s", conflict)

    app.timer(settings.sweep_interval)(sweep)
    add_views(app, pipeline.engine, RedisStore(store.client, prefix=settings.redis_prefix))
    return app


def add_views(app: TaggerApp, engine: Engine, store: RedisStore) -> None:
    """GET /profiles/{user_id} and GET /tags/{tag}/members?after=&limit= as JSON."""

    async def profile_view(view: Any, request: Any, user_id: str) -> Any:
        found = (await redis_call(store.load, [user_id])).get(user_id)
        if found is None:
            return view.json({"error": f"no profile for user {user_id!r}"}, status=404)
        return view.json(engine.describe(found))

    async def members_view(view: Any, request: Any, tag: str) -> Any:
        query = request.query
        try:
            limit = min(int(query.get("limit", DEFAULT_PAGE)), MAX_PAGE)
        except ValueError:
            return view.json({"error": "limit must be a number"}, status=400)
        after = query.get("after", "")
        members = await redis_call(store.tag_members, tag, after=after, limit=limit)
        more = len(members) == limit
        return view.json({"tag": tag, "members": members, "next": members[-1] if more else None})

    app.page("/profiles/{user_id}")(profile_view)
    app.page("/tags/{tag}/members")(members_view)


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
            return function(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("redis unreachable, retrying in %.1fs: %s", delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)

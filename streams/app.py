"""The Faust worker: behaviour events in, profiles in Redis, decisions out. Wiring only.

The transport hands the agent a whole fetch (see ``streams.transport``). Per fetch: decode
and apply each partition's batch (``Pipeline.prepare``), send all outputs and dead letters
and wait for the broker's acks, save each batch to Redis in one round trip, then ack the
messages so that Faust commits their offsets. A crash anywhere redoes the fetch: outputs
repeat with the same ids and Redis refuses what it already has.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from faust.types import TP, Message
from mode import CrashingSupervisor

from streams import metrics, topics
from streams.kafka_auth import faust_credentials
from streams.live_rules import RECOMPUTE_INTERVAL, LiveRules
from streams.progress import Progress, sent_at
from streams.redis_retry import REDIS_DOWN, redis_call
from streams.redis_store import RedisStore, StoreConflictError, client_for
from streams.rules_board import RulesBoard
from streams.settings import Settings
from streams.transport import Fetch, FetchHandler, Transport
from streams.web import DataAccess, Web
from taggers.engine import Engine
from taggers.outputs import output_to_dict
from taggers.pipeline import Pipeline, Prepared, Record
from taggers.ruleset import RuleSet
from taggers.store import OperationsStore

log = logging.getLogger(__name__)
MAX_CONFLICT_RETRIES = 5
FETCHES_AHEAD = 1  # fetches waiting for the agent: more only adds queueing latency
REDIS_UNREACHABLE = {"error": "Redis is unreachable, try again"}
DEFAULT_PAGE = 100
MAX_PAGE = 10_000
LAG_INTERVAL = 5.0  # seconds between consumer lag reports


class TaggerApp(faust.App):
    """A Faust app whose consumer takes its fetch wait from our settings and hands
    messages of ``batch_topics`` to ``on_fetch`` a whole fetch at a time."""

    fetch_max_wait_ms: int = 1500
    batch_topics: frozenset[str] = frozenset()
    on_fetch: FetchHandler | None = None
    live_rules: LiveRules | None = None

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Web:
        return Web(self)  # our views only: none of Faust's (see streams.web)

    async def on_stop(self) -> None:
        await super().on_stop()
        if self.live_rules is not None:
            self.live_rules.stopped()


def create_app(settings: Settings, rules: RuleSet, rules_dir: Path) -> TaggerApp:
    """Build the worker app for these settings and rules (loaded from ``rules_dir``,
    which it watches for changes)."""
    app = TaggerApp(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(Path(tempfile.gettempdir(), f"tagger-{settings.app_id}")),
        topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.batch_size,
        producer_acks=-1,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        topic_disable_leader=True,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(settings.events_topic, partitions=settings.partitions, **raw)
    output_topics = topics.output_topics(settings)
    rekeyed = app.topic(settings.rekeyed_topic, partitions=settings.partitions, **raw)
    store = RedisStore(client_for(settings), prefix=settings.redis_prefix)
    metrics.REDIS_UP.set(1)  # the store has just loaded its functions into Redis
    pipeline = Pipeline(
        Engine(rules),
        store,
        settings.max_event_bytes,
        max_future_skew_ms=int(settings.max_future_skew * 1000),
    )
    lock = asyncio.Lock()  # batches and sweeps of this worker take turns on Redis
    progress = Progress()  # what is applied, for the lag report and wall-clock timers

    async def send(*batches: Prepared) -> None:
        # Straight to the producer: Topic.send adds a future, sensors and a topic
        # declaration check per message, and yields to the loop each time (measured:
        # the worker drained 1.6x faster without it).
        producer = await app.maybe_start_producer()
        pending = []
        for batch in batches:
            for dead in batch.dead:
                metrics.DEAD_LETTERS.labels(dead.reason).inc()
                value = dead.to_json(settings.events_topic, settings.rekeyed_topic)
                pending.append(
                    await producer.send(settings.dlq_topic, None, value, None, None, None)
                )
            for copy in batch.rekey:
                # With its origin, which guards it when applied (a crash makes it sent
                # again), and the original's send time, by which timers and the future
                # check judge it as they did the original.
                key, headers = copy.user_id.encode(), [copy.origin.header()]
                sent = None if copy.timestamp is None else copy.timestamp / 1000
                topic = settings.rekeyed_topic
                pending.append(await producer.send(topic, key, copy.value, None, sent, headers))
            for output in batch.outputs:
                metrics.count_output(output)
                key, value = output.user_id.encode(), orjson.dumps(output_to_dict(output))
                topic = output_topics[output.kind]
                pending.append(await producer.send(topic, key, value, None, None, None))
        if pending:
            await asyncio.gather(*pending)  # the broker has them before Redis moves on

    sources = {settings.events_topic: ("", True), settings.rekeyed_topic: ("r", False)}

    def prepare(tp: TP, messages: list[Message]) -> Prepared:
        prefix, check_keys = sources[tp.topic]
        records = [
            Record(tp.partition, m.offset, m.value, m.key, m.headers or (), sent_at(m))
            for m in messages
        ]
        return pipeline.prepare(
            tp.partition,
            records,
            source=f"{prefix}{tp.partition}",
            check_keys=check_keys,
            rekeyed=not check_keys,
        )

    async def save(tp: TP, batch: Prepared, messages: list[Message]) -> Prepared:
        """Save a prepared batch; if another writer changed its profiles first, redo it."""
        for attempt in range(1, MAX_CONFLICT_RETRIES + 1):
            try:
                await redis_call(pipeline.save, batch)
                return batch
            except StoreConflictError as conflict:
                # Another writer (a worker that lost this partition) got there first:
                # read again and redo; what Redis already has is skipped by offset.
                metrics.STORE_CONFLICTS.inc()
                log.warning("batch conflict, attempt %d: %s", attempt, conflict)
                batch = await redis_call(prepare, tp, messages)
                await send(batch)
        raise RuntimeError(f"{tp}: profiles keep changing under us")

    async def handle(fetch: Fetch) -> None:
        """Apply a fetch: prepare each partition's batch, send all their outputs at once,
        then save each batch."""
        started = time.perf_counter()
        ready: dict[TP, Prepared] = {}
        touched: set[str] = set()  # users of the batches in ready
        for tp, messages in fetch.parts.items():
            batch = await redis_call(prepare, tp, messages)
            if not touched.isdisjoint(batch.profiles):
                # A user of an earlier batch again (a re-keyed user, say): this batch read
                # the profile before that one's changes. Finish those, then read again.
                await finish(fetch, ready)
                ready, touched = {}, set()
                batch = await redis_call(prepare, tp, messages)
            ready[tp] = batch
            touched.update(batch.profiles)
        await finish(fetch, ready)
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)

    async def finish(fetch: Fetch, ready: dict[TP, Prepared]) -> None:
        await send(*ready.values())
        for tp, first in ready.items():
            batch = await save(tp, first, fetch.parts[tp])
            count_batch(tp.topic, fetch.parts[tp], batch)
            log.debug(
                "batch applied",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "events": len(fetch.parts[tp]),
                    "outputs": len(batch.outputs),
                    "dead": len(batch.dead),
                },
            )

    app.batch_topics = frozenset(sources)
    for topic in (events, rekeyed):
        app.topics.add(topic)  # subscribed; their messages arrive a fetch at a time
    fetches = app.channel(maxsize=FETCHES_AHEAD)

    async def deliver(fetch: Fetch) -> None:
        await fetches.put(cast(Any, fetch))  # a channel carries any value, not only events

    app.on_fetch = deliver

    # A crash (a bug, or conflicts that never end) stops the worker rather than
    # restarting the agent: a restart would leave the fetch in hand neither applied nor
    # fetched again until the next rebalance. A restarted process resumes from the
    # committed offsets.
    @app.agent(fetches, supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:
        consumer = app.consumer
        async for fetch in stream:
            messages = [message for part in fetch.parts.values() for message in part]
            if messages[0].generation_id != app.consumer_generation_id:
                continue  # fetched before a rebalance: seek and fetch again did or will
            for message in messages:
                consumer.track_message(message)  # a rebalance waits for it to be acked
            progress.renew(app.consumer_generation_id)
            for tp, part in fetch.parts.items():
                progress.took(tp, part)  # in hand: its partition is not caught up
            async with lock:
                await handle(fetch)
                if settings.clock == "event":
                    # The timers this fetch's events made due fire before its offsets can
                    # be committed: a worker that takes over the partition cannot miss them.
                    for partition in sorted({tp.partition for tp in fetch.parts}):
                        now = pipeline.watermark(partition)
                        while now is not None and await fire_due_batch(partition, now):
                            pass
                progress.renew(app.consumer_generation_id)
                for tp, part in fetch.parts.items():
                    progress.done(tp, part)
            for message in messages:
                consumer.ack(message)

    async def fire_due_batch(partition: int, now: int) -> bool:
        """Fire up to one sweep's worth of a partition's deadlines due by ``now`` (the
        caller holds the lock); whether there were any."""
        batch = await redis_call(pipeline.sweep, partition, now)
        metrics.TIMER_SWEEPS.inc()
        if not batch.profiles:
            return False
        metrics.DEADLINES_FIRED.inc(len(batch.profiles))
        await send(batch)
        try:
            await redis_call(pipeline.save, batch)
        except StoreConflictError as conflict:
            metrics.STORE_CONFLICTS.inc()
            log.warning("sweep skipped users changed meanwhile: %s", conflict)
        return True

    async def sweep_by_wall_clock() -> None:
        """Fire each assigned partition's deadlines up to the wall clock, or, while the
        partition lags, up to when its latest applied message was sent (``Progress``). The
        events topic and the re-keyed topic share the partition's deadline set: both must
        have reached the time."""
        consumer = app.consumer
        assigned = sorted(tp for tp in consumer.assignment() if tp.topic in sources)
        if not assigned:
            return
        now = int(time.time() * 1000)  # before the ends: what is sent later is after it
        try:
            ends = await consumer.highwaters(*assigned)
            progress.renew(app.consumer_generation_id)
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
        for partition, until in sorted(reached.items()):
            while until is not None:
                async with lock:  # per sweep batch, so that events are not held up long
                    if not await fire_due_batch(partition, until):
                        break

    if settings.clock == "wall":
        app.timer(settings.sweep_interval)(sweep_by_wall_clock)

    async def report_lag() -> None:
        """Set the lag gauge of each assigned input partition; drop those no longer ours."""
        consumer = app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in sources]
        progress.renew(app.consumer_generation_id)  # a partition back from another worker
        lags = {}
        try:
            ends = await consumer.highwaters(*assigned) if assigned else {}
            for tp in assigned:
                position = progress.applied.get(tp)
                if position is None:
                    position = await consumer.position(tp)  # nothing applied here yet
                if tp in ends and position is not None:
                    lags[tp] = max(0, ends[tp] - position)
        except Exception as error:  # a gauge must not stop the worker: the broker may be away
            log.warning("consumer lag not reported: %s", error)
            return
        for tp in reported - lags.keys():  # revoked: their new owner reports them
            metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        for tp, lag in lags.items():
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        reported.clear()
        reported.update(lags)

    reported: set[TP] = set()  # partitions with a lag gauge
    app.timer(LAG_INTERVAL)(report_lag)

    async def report_populations() -> None:
        """Set the stage and audience gauges from Redis's set sizes (no scan)."""
        lifecycle = pipeline.engine.rules.lifecycle
        stages = [] if lifecycle is None else list(lifecycle.stages)
        try:
            by_stage, by_tag = store.population(stages)
        except REDIS_DOWN:
            return  # the worker's own calls report the outage
        except Exception as error:  # a gauge must not stop the worker
            log.warning("stage and audience sizes not reported: %s", error)
            return
        for stage, users in by_stage.items():
            metrics.STAGE_USERS.labels(stage).set(users)
        for tag, users in by_tag.items():
            metrics.AUDIENCE_USERS.labels(tag).set(users)

    if settings.stats_interval > 0:
        app.timer(settings.stats_interval)(report_populations)

    board = RulesBoard(store.client, settings.redis_prefix)
    live = LiveRules(
        rules,
        rules_dir,
        pipeline,
        store,
        board,
        lock,
        send,
        recompute_rate=settings.recompute_rate,
    )
    live.started()
    app.live_rules = live
    if settings.rules_poll_interval > 0:
        app.timer(settings.rules_poll_interval)(live.poll)
    if settings.recompute_rate > 0:
        app.timer(RECOMPUTE_INTERVAL)(live.recompute_step)
    access = DataAccess.from_settings(settings)

    async def say_data_views_are_closed() -> None:  # at start, once logging is set up
        log.warning(
            "/profiles and /tags answer 403: the web port is not on loopback"
            " and TAGGER_WEB_TOKEN is not set",
            extra={"web_bind": settings.web_bind},
        )

    if access.closed:
        app.task(say_data_views_are_closed)
    add_views(app, pipeline, store, access)
    return app


def add_views(
    app: TaggerApp, pipeline: Pipeline, store: OperationsStore, access: DataAccess
) -> None:
    """GET /metrics (Prometheus text); GET /healthz (alive) and /readyz (partitions
    assigned, Redis reachable, rules loaded: else 503 with the problems); GET
    /profiles/{user_id} and GET /tags/{tag}/members?after=&limit= as JSON, for those
    ``access`` lets in. These are the only routes the worker serves."""

    # A reader gets a 503 at once while Redis is away; only the worker's own work waits.
    async def profile_view(view: Any, request: Any, user_id: str) -> Any:
        if (refused := access.check(view, request)) is not None:
            return refused
        try:
            found = store.load([user_id]).get(user_id)
        except REDIS_DOWN:
            return view.json(REDIS_UNREACHABLE, status=503)
        if found is None:
            return view.json({"error": f"no profile for user {user_id!r}"}, status=404)
        return view.json(pipeline.engine.describe(found))

    async def members_view(view: Any, request: Any, tag: str) -> Any:
        if (refused := access.check(view, request)) is not None:
            return refused
        query = request.query
        try:
            limit = min(int(query.get("limit", DEFAULT_PAGE)), MAX_PAGE)
        except ValueError:
            limit = 0
        if limit < 1:
            return view.json({"error": "limit must be a whole number from 1"}, status=400)
        try:
            members = store.tag_members(tag, after=query.get("after", ""), limit=limit)
        except REDIS_DOWN:
            return view.json(REDIS_UNREACHABLE, status=503)
        more = len(members) == limit
        return view.json({"tag": tag, "members": members, "next": members[-1] if more else None})

    async def metrics_view(view: Any, request: Any) -> Any:
        # In headers: aiohttp refuses a content_type argument that carries a charset.
        return view.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def health_view(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})  # the loop answers: the process is alive

    async def ready_view(view: Any, request: Any) -> Any:
        problems = []
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in app.batch_topics]
        if not assigned:
            problems.append("no partitions assigned")
        try:
            store.ping()
        except REDIS_DOWN:
            problems.append("Redis unreachable")
        live = app.live_rules
        if live is None:
            problems.append("no rules loaded")
        body = {
            "ready": not problems,
            "partitions": len(assigned),
            "rules_version": None if live is None else live.rules.version,
            "problems": problems,
        }
        return view.json(body, status=503 if problems else 200)

    app.page("/healthz")(health_view)
    app.page("/readyz")(ready_view)
    app.page("/metrics")(metrics_view)
    app.page("/profiles/{user_id}")(profile_view)
    app.page("/tags/{tag}/members")(members_view)


def count_batch(topic: str, messages: list[Message], batch: Prepared) -> None:
    """Count a saved batch, its events by type and outcome, and how long they took from
    their Kafka timestamp to Redis."""
    metrics.BATCHES.labels(topic).inc()
    metrics.BATCH_SIZE.observe(len(messages))
    for (event_type, outcome), count in batch.outcomes.items():
        metrics.EVENTS.labels(event_type, outcome).inc(count)
    for aggregate, count in batch.skipped.items():
        metrics.AGGREGATE_SKIPPED_VALUES.labels(aggregate).inc(count)
    saved = time.time()
    for message in messages:
        metrics.EVENT_TO_REDIS_SECONDS.observe(max(0.0, saved - message.timestamp))

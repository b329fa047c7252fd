"""The Faust worker: behaviour events in, profiles in Redis, decisions out. Wiring only.

The parts, each with one job, are in ``streams.worker`` (fetch handling, output routing
and sending, timers, gauges, views) and ``streams.live_rules``; ``create_app`` builds
them for the settings and hands each what it needs: one lock, so that fetches, sweeps
and rule reloads take turns on Redis, and one record of what is applied
(``streams.progress``), for the lag report and the wall-clock timers.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import faust
from mode import CrashingSupervisor

from streams import metrics
from streams.core_build import core_description, core_is_compiled, pure_python_requested
from streams.kafka_auth import faust_credentials
from streams.live_rules import RECOMPUTE_INTERVAL, LiveRules
from streams.progress import Progress
from streams.redis_store import RedisStore, client_for
from streams.rules_board import RulesBoard
from streams.settings import Settings
from streams.transport import Fetch, FetchHandler, Transport
from streams.web import DataAccess, Web
from streams.worker.fetches import FetchHandling
from streams.worker.gauges import LAG_INTERVAL, LagGauge, PopulationGauge
from streams.worker.routing import Topics
from streams.worker.sending import Sender
from streams.worker.timers import Timers
from streams.worker.views import add_views
from taggers.engine import Engine
from taggers.pipeline import Pipeline
from taggers.ruleset import RuleSet

log = logging.getLogger(__name__)
FETCHES_AHEAD = 1  # fetches waiting for the agent: more only adds queueing latency


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
    topics = Topics.from_settings(settings)
    app = new_app(settings, topics)
    store = RedisStore(
        client_for(settings),
        prefix=settings.redis_prefix,
        tombstone_days=settings.tombstone_days,
        cache_size=settings.profile_cache_size,
    )
    metrics.REDIS_UP.set(1)  # the store has just loaded its functions into Redis
    pipeline = Pipeline(
        Engine(rules),
        store,
        settings.max_event_bytes,
        max_future_skew_ms=int(settings.max_future_skew * 1000),
        max_ids=settings.max_ids,
    )
    lock = asyncio.Lock()  # batches, sweeps and reloads of this worker take turns on Redis
    progress = Progress()  # what is applied, for the lag report and wall-clock timers
    sender = Sender(app.maybe_start_producer, topics)
    timers = Timers(pipeline, sender, lock, group=app, progress=progress, topics=topics)
    fetches = FetchHandling(
        pipeline,
        topics,
        sender,
        app,
        progress,
        lock,
        after_apply=timers.after_fetch if settings.clock == "event" else None,
        on_rebalance=store.cache.keep,
    )
    run_agent(app, fetches)
    if settings.clock == "wall":
        app.timer(settings.sweep_interval)(timers.sweep_by_wall_clock)
    app.timer(LAG_INTERVAL)(LagGauge(app, progress, topics).report)
    if settings.stats_interval > 0:
        app.timer(settings.stats_interval)(PopulationGauge(store, pipeline).report)
    board = RulesBoard(store.client, settings.redis_prefix)
    live = LiveRules(
        rules,
        rules_dir,
        pipeline,
        store,
        board,
        lock,
        sender.send,
        recompute_rate=settings.recompute_rate,
    )
    add_live_rules(app, live, settings)
    app.task(_say_which_core)
    access = DataAccess.from_settings(settings)
    if access.closed:
        app.task(_say_data_views_are_closed(settings))
    add_views(app, pipeline, store, access, topics)
    return app


def new_app(settings: Settings, topics: Topics) -> TaggerApp:
    """The Faust app for these settings, subscribed to every input source's topic (their
    messages arrive a fetch at a time); no agent, timer or view yet."""
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
    for name in topics.inputs.values():
        app.topics.add(app.topic(name, partitions=settings.partitions, **raw))
    app.batch_topics = topics.input_names
    return app


def run_agent(app: TaggerApp, fetches: FetchHandling) -> None:
    """Hand each fetch to an agent that applies it (``FetchHandling.take``)."""
    channel = app.channel(maxsize=FETCHES_AHEAD)

    async def deliver(fetch: Fetch) -> None:
        await channel.put(cast(Any, fetch))  # a channel carries any value, not only events

    app.on_fetch = deliver

    # A crash (a bug, or conflicts that never end) stops the worker rather than
    # restarting the agent: a restart would leave the fetch in hand neither applied nor
    # fetched again until the next rebalance. A restarted process resumes from the
    # committed offsets.
    @app.agent(channel, supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:
        async for fetch in stream:
            await fetches.take(fetch)


def add_live_rules(app: TaggerApp, live: LiveRules, settings: Settings) -> None:
    """Report the worker's rules, and poll their directory and recompute on timers."""
    live.started()
    app.live_rules = live
    if settings.rules_poll_interval > 0:
        app.timer(settings.rules_poll_interval)(live.poll)
    if settings.recompute_rate > 0:
        app.timer(RECOMPUTE_INTERVAL)(live.recompute_step)


async def _say_which_core() -> None:
    """At start: which build of the core runs (a warning if it is pure Python unasked)."""
    compiled = core_is_compiled()
    say = log.info if compiled or pure_python_requested() else log.warning
    say("running the %s", core_description(), extra={"core": "compiled" if compiled else "pure"})


def _say_data_views_are_closed(settings: Settings) -> Callable[[], Awaitable[None]]:
    async def say() -> None:  # at start, once logging is set up
        log.warning(
            "/profiles and /tags answer 403: the web port is not on loopback"
            " and TAGGER_WEB_TOKEN is not set",
            extra={"web_bind": settings.web_bind},
        )

    return say

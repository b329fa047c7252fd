"""Gauges the worker keeps current: consumer lag per input partition, and the stage
and audience populations from Redis."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from faust.types import TP

from streams import metrics
from streams.progress import Progress
from streams.redis_retry import REDIS_DOWN
from streams.worker.kafka import Group
from streams.worker.routing import Topics
from taggers.pipeline import Pipeline

log = logging.getLogger(__name__)
LAG_INTERVAL = 5.0  # seconds between consumer lag reports


class LagGauge:
    """Reports each assigned input partition's lag: its end offset less what this worker
    applied (or, with nothing applied there yet, the consumer's position)."""

    def __init__(self, group: Group, progress: Progress, topics: Topics) -> None:
        self.group = group
        self.progress = progress
        self.topics = topics
        self.reported: set[TP] = set()  # partitions with a lag gauge

    async def report(self) -> None:
        """Set the lag gauge of each assigned input partition; drop those no longer ours."""
        consumer = self.group.consumer
        assigned = self.topics.assigned(consumer.assignment())
        self.progress.renew(
            self.group.consumer_generation_id
        )  # a partition back from another worker
        lags = {}
        try:
            ends = await consumer.highwaters(*assigned) if assigned else {}
            for tp in assigned:
                position = self.progress.applied.get(tp)
                if position is None:
                    position = await consumer.position(tp)  # nothing applied here yet
                if tp in ends and position is not None:
                    lags[tp] = max(0, ends[tp] - position)
        except Exception as error:  # a gauge must not stop the worker: the broker may be away
            log.warning("consumer lag not reported: %s", error)
            return
        for tp in self.reported - lags.keys():  # revoked: their new owner reports them
            metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        for tp, lag in lags.items():
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        self.reported = set(lags)


class Populations(Protocol):
    """A store that counts users per stage and per tag without a scan."""

    def population(self, stages: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Users per stage (of those named) and per tag."""
        ...


class PopulationGauge:
    """Reports how many users are in each lifecycle stage and hold each tag."""

    def __init__(self, store: Populations, pipeline: Pipeline) -> None:
        self.store = store
        self.pipeline = pipeline  # its engine's rules name the stages (they may reload)

    async def report(self) -> None:
        """Set the stage and audience gauges from Redis's set sizes (no scan)."""
        lifecycle = self.pipeline.engine.rules.lifecycle
        stages = [] if lifecycle is None else list(lifecycle.stages)
        try:
            by_stage, by_tag = self.store.population(stages)
        except REDIS_DOWN:
            return  # the worker's own calls report the outage
        except Exception as error:  # a gauge must not stop the worker
            log.warning("stage and audience sizes not reported: %s", error)
            return
        for stage, users in by_stage.items():
            metrics.STAGE_USERS.labels(stage).set(users)
        for tag, users in by_tag.items():
            metrics.AUDIENCE_USERS.labels(tag).set(users)

"""Create the topics the worker reads and writes, if they are missing (kafka-python admin)."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.kafka_auth import client_options
from streams.settings import Settings
from taggers.outputs import TOPIC_KINDS
from taggers.sources import EVENTS, INPUT_SOURCES, REKEYED, InputSource

log = logging.getLogger(__name__)


def input_topics(settings: Settings) -> dict[InputSource, str]:
    """Each input source's topic: the setting its declaration names."""
    return {source: str(getattr(settings, source.topic_setting)) for source in INPUT_SOURCES}


def output_topics(settings: Settings) -> dict[str, str]:
    """Each output topic, by the name of the kind it is of: the setting its declaration
    names. The kinds sent ``everywhere`` have none of their own: they go to all of these."""
    return {kind.name: getattr(settings, str(kind.topic_setting)) for kind in TOPIC_KINDS}


def topic_names(settings: Settings) -> list[str]:
    """Every topic of the worker: input, outputs, the DLQ and the re-keyed input."""
    inputs = input_topics(settings)
    return [inputs[EVENTS], *output_topics(settings).values(), settings.dlq_topic, inputs[REKEYED]]


class TopicLayoutError(RuntimeError):
    """The input topics are laid out so that a user's events would reach two workers."""


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return those created.

    New topics get ``settings.partitions`` partitions, except the re-keyed topic, which
    gets as many as the events topic has: a user's events from both must land on the
    same partition number, which Faust assigns to one worker (it co-partitions topics of
    equal partition count), and whose timers that worker sweeps. Raises
    TopicLayoutError if the two topics already exist with different counts.
    """
    admin = KafkaAdminClient(**client_options(settings), client_id="tagger-admin")
    try:
        existing = set(admin.list_topics())
        counts = (
            partition_counts(admin, [settings.events_topic])
            if settings.events_topic in existing
            else {}
        )
        created = []
        for name in topic_names(settings):
            if name in existing:
                continue
            partitions = settings.partitions
            if name == settings.rekeyed_topic:
                partitions = counts.get(settings.events_topic, settings.partitions)
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, replication_factor=settings.replication_factor)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker created it meanwhile
        if created:
            log.info("created topics", extra={"topics": created})
        inputs = partition_counts(admin, [settings.events_topic, settings.rekeyed_topic])
        if len(set(inputs.values())) > 1:
            raise TopicLayoutError(
                f"{settings.events_topic} has {inputs[settings.events_topic]} partitions and "
                f"{settings.rekeyed_topic} has {inputs[settings.rekeyed_topic]}: they must be "
                "equal, so that a user's events from both reach the same worker. Once "
                f"{settings.rekeyed_topic} is drained (it only holds events on their way to "
                "being applied), recreate it with the same count."
            )
        return created
    finally:
        admin.close()


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """How many partitions each of these (existing) topics has."""
    # kafka-python 2.1+ names the field "name"; older releases "topic".
    return {
        found.get("name") or found["topic"]: len(found["partitions"])
        for found in admin.describe_topics(names)
    }

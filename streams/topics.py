"""Create the topics the worker reads and writes, if they are missing (kafka-python admin)."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from taggers.settings import Settings

log = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    """Every topic of the worker: input, outputs, the DLQ and the re-keyed input."""
    return [
        settings.events_topic,
        settings.tag_changes_topic,
        settings.transitions_topic,
        settings.alerts_topic,
        settings.dlq_topic,
        settings.rekeyed_topic,
    ]


def bootstrap(settings: Settings) -> str:
    """host:port list of the broker URL (``kafka://a:9092;b:9092`` -> ``a:9092,b:9092``)."""
    return settings.broker_url.split("://", 1)[-1].replace(";", ",")


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics with ``settings.partitions`` partitions; return those created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(settings), client_id="tagger-admin")
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker created it meanwhile
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        admin.close()

"""Send event lines to the events topic, keyed by user id: ``tagger produce``, and the
way to backfill a fresh deployment from an export (see docs/rules.md)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson
from kafka import KafkaProducer

from streams.kafka_auth import client_options
from streams.settings import Settings


def user_key(value: bytes) -> bytes | None:
    """The message key of an event line: its user id, or None for a line that has none
    (sent unkeyed all the same: the worker puts it in the DLQ with the reason)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    user = data.get("user_id") if isinstance(data, dict) else None
    return None if user is None else str(user).encode()


def produce_lines(
    settings: Settings,
    lines: Iterable[bytes | str],
    *,
    partition: int | None = None,
    rate: int | None = None,
) -> int:
    """Send every non-blank line to ``settings.events_topic`` (keyed by user id, so that
    Kafka's partitioner keeps a user's events in order on one partition, or all into
    ``partition``), at most ``rate`` a second if given; wait until the broker has them
    all; how many were sent."""
    producer = KafkaProducer(**client_options(settings), acks="all", linger_ms=5)
    sent = 0
    started = time.monotonic()
    try:
        for line in lines:
            if rate is not None and (ahead := sent / rate - (time.monotonic() - started)) > 0:
                time.sleep(ahead)
            value = line.encode() if isinstance(line, str) else line
            value = value.rstrip(b"\r\n")
            if not value.strip():
                continue
            key = user_key(value) if partition is None else None
            producer.send(settings.events_topic, key=key, value=value, partition=partition)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent

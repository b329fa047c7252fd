"""Faust's aiokafka transport with the consumer's fetch wait as a setting.

Faust hard-codes ``fetch_max_wait_ms=1500``. A broker may hold a fetch that long even when
data is waiting (tansu does), which puts up to 1.5 s on every event's latency; the wait is
``TAGGER_FETCH_MAX_WAIT_MS`` instead.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher: set it before that.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class Consumer(driver.Consumer):
    """The aiokafka consumer, with our consumer thread."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """The aiokafka transport, with our consumer."""

    Consumer = Consumer

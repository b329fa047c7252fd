"""The engine wired to Kafka (Faust) and Redis, and a local stack to run it on.

Modules: ``app`` (the Faust worker; imported by ``tagger run``), ``pipeline`` (what a
worker does with a batch, apart from Kafka), ``topics``, ``kafka_auth`` (TLS and SASL
for every Kafka client), ``transport`` (Faust's aiokafka
transport with our fetch wait and batch delivery), ``live_rules`` (rule reload and the
recompute after), ``redis_retry`` (Redis calls that wait out an outage), ``metrics``
(Prometheus), ``local_stack`` (tansu and redis-server on free ports), ``demo`` (``tagger
demo``) and ``testing`` (helpers for the integration tests). The names below do not import Faust.
"""

from streams.local_stack import RedisServer, TansuBroker, start_worker, stop_process
from streams.pipeline import DeadLetter, Pipeline, Prepared, Record
from streams.topics import TopicLayoutError, ensure_topics, topic_names

__all__ = [
    "DeadLetter",
    "Pipeline",
    "Prepared",
    "Record",
    "RedisServer",
    "TansuBroker",
    "TopicLayoutError",
    "ensure_topics",
    "start_worker",
    "stop_process",
    "topic_names",
]

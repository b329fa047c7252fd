"""The engine wired to Kafka (Faust) and Redis, and a local stack to run it on.

Modules: ``app`` (the Faust worker; imported by ``tagger run``), ``cli`` (the ``tagger``
command), ``settings`` (the one settings object, from ``TAGGER_*``), ``redis_store`` and
``rules_board`` (profiles and the rules' status in Redis), ``topics``, ``kafka_auth`` (TLS
and SASL for every Kafka client), ``transport`` (Faust's aiokafka transport with our fetch
wait and batch delivery), ``live_rules`` (rule reload and the recompute after),
``redis_retry`` (Redis calls that wait out an outage), ``metrics`` (Prometheus),
``local_stack`` (tansu and redis-server on free ports), ``demo`` (``tagger demo``). The
names below do not import Faust.
"""

# First: it decides whether the core runs compiled or as pure Python (TAGGER_PURE_PYTHON)
# before any module of taggers is imported.
import streams.core_build  # noqa: F401
from streams.local_stack import RedisServer, TansuBroker, start_worker, stop_process
from streams.settings import Settings, SettingsError, load_settings
from streams.topics import TopicLayoutError, ensure_topics, topic_names

__all__ = [
    "RedisServer",
    "Settings",
    "SettingsError",
    "TansuBroker",
    "TopicLayoutError",
    "ensure_topics",
    "load_settings",
    "start_worker",
    "stop_process",
    "topic_names",
]

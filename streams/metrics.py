"""The worker's Prometheus metrics (prometheus-client), served at ``/metrics``.

One worker per process, so the metrics live in the default registry, next to the
process collector (CPU, memory, open files). Label values are bounded sets: outcomes,
output kinds, error classes; never a user id.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "BATCHES",
    "CONTENT_TYPE",
    "EVENTS",
    "FETCH_SECONDS",
    "OUTPUTS",
    "RECOMPUTE_RUNNING",
    "RECOMPUTE_SCANNED",
    "RECOMPUTE_USERS",
    "REDIS_ERRORS",
    "REDIS_UP",
    "RULES_INFO",
    "RULE_RELOADS",
    "STORE_CONFLICTS",
    "exposition",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

EVENTS = Counter(
    "tagger_events_total",
    "Input events by outcome: applied, redelivered (Redis had it), dead (to the DLQ), "
    "rekeyed (re-sent keyed by user id)",
    ["outcome"],
)
BATCHES = Counter(
    "tagger_batches_total", "Batches (a partition's share of a fetch) applied, by topic", ["topic"]
)
FETCH_SECONDS = Histogram(
    "tagger_fetch_seconds",
    "Time to apply a fetch: decode, engine, send outputs, save to Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTPUTS = Counter("tagger_outputs_total", "Output events sent, by kind", ["kind"])
REDIS_ERRORS = Counter(
    "tagger_redis_errors_total",
    "Redis calls that failed and will be retried, by error class",
    ["error"],
)
REDIS_UP = Gauge("tagger_redis_up", "1 when the last Redis call succeeded, 0 while retrying")
STORE_CONFLICTS = Counter(
    "tagger_store_conflicts_total",
    "Batches redone because another writer changed a profile first",
)

RULES_INFO = Gauge(
    "tagger_rules_info", "The live rule set: 1 for its version (a content hash)", ["version"]
)
RULE_RELOADS = Counter(
    "tagger_rule_reloads_total",
    "Changed rule sets seen in the rule directory, by result: loaded or rejected",
    ["result"],
)
RECOMPUTE_USERS = Counter(
    "tagger_recompute_users_total",
    "Stored profiles this worker re-evaluated after a rule change, by result: changed, "
    "unchanged or failed",
    ["result"],
)
RECOMPUTE_SCANNED = Gauge(
    "tagger_recompute_scanned_users",
    "Users the current recompute has re-evaluated so far (all workers); see "
    "tagger_recompute_running",
)
RECOMPUTE_RUNNING = Gauge(
    "tagger_recompute_running", "1 while a recompute of the live rule set has users to go"
)


def exposition() -> bytes:
    """Every metric of this process in the Prometheus text format."""
    return generate_latest()

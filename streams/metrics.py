"""The worker's Prometheus metrics (prometheus-client), served at ``/metrics``.

One worker per process, so the metrics live in the default registry, next to the
process collector (CPU, memory, open files). Label values are bounded sets: outcomes,
output kinds, error classes; never a user id.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from taggers.outputs import OUTPUT_KINDS, Output, kind_of

__all__ = [
    "AGGREGATE_SKIPPED_VALUES",
    "AUDIENCE_USERS",
    "BATCHES",
    "BATCH_SIZE",
    "CONSUMER_LAG",
    "CONTENT_TYPE",
    "DEADLINES_FIRED",
    "DEAD_LETTERS",
    "EVENTS",
    "EVENT_TO_REDIS_SECONDS",
    "FETCH_SECONDS",
    "OUTPUTS",
    "OUTPUTS_BY_KIND",
    "RECOMPUTE_RUNNING",
    "RECOMPUTE_SCANNED",
    "RECOMPUTE_USERS",
    "REDIS_ERRORS",
    "REDIS_RETRIES",
    "REDIS_UP",
    "RULES_INFO",
    "RULE_RELOADS",
    "STAGE_USERS",
    "STORE_CONFLICTS",
    "TIMER_SWEEPS",
    "count_output",
    "exposition",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

EVENTS = Counter(
    "tagger_events_total",
    "Input events by type (a known event type, other, or unknown when it did not decode) "
    "and outcome: applied, redelivered (Redis had it), dead (to the DLQ), rekeyed (re-sent "
    "keyed by user id, or to the identity partition), forgotten (under a forgotten id, "
    "older than the forget: ignored)",
    ["type", "outcome"],
)
BATCHES = Counter(
    "tagger_batches_total", "Batches (a partition's share of a fetch) applied, by topic", ["topic"]
)
BATCH_SIZE = Histogram(
    "tagger_batch_size_events",
    "Events per batch (a partition's share of a fetch)",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
FETCH_SECONDS = Histogram(
    "tagger_fetch_seconds",
    "Time to apply a fetch: decode, engine, send outputs, save to Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENT_TO_REDIS_SECONDS = Histogram(
    "tagger_event_to_redis_seconds",
    "From an event's Kafka timestamp to its profile saved in Redis (applied events)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
CONSUMER_LAG = Gauge(
    "tagger_consumer_lag_messages",
    "Messages of an assigned input partition not yet applied (high watermark minus the "
    "next offset to apply), by topic and partition",
    ["topic", "partition"],
)
TIMER_SWEEPS = Counter(
    "tagger_timer_sweeps_total", "Sweeps of a partition's due deadlines (timers)"
)
DEADLINES_FIRED = Counter("tagger_deadlines_fired_total", "Users whose due deadline a sweep fired")
OUTPUTS = Counter("tagger_outputs_total", "Output events sent, by kind", ["kind"])
# The business view of what was sent, one counter per output kind as its declaration
# says (tagger_tag_changes_total{tag,op}, ...); a redone batch sends, and counts, its
# outputs again.
OUTPUTS_BY_KIND = {
    kind.name: Counter(kind.metric.name, kind.metric.help, list(kind.metric.labels))
    for kind in OUTPUT_KINDS
}
AGGREGATE_SKIPPED_VALUES = Counter(
    "tagger_aggregate_skipped_values_total",
    "Event values an aggregate skipped because they are of the wrong type (a sum or avg "
    "given text, a distinct given an object), by aggregate name",
    ["aggregate"],
)
ALERTS_SUPPRESSED = Counter(
    "tagger_alerts_suppressed_total",
    "Alerts not sent because the person opted out of marketing, by alert name",
    ["name"],
)
DEAD_LETTERS = Counter(
    "tagger_dead_letters_total",
    "Events sent to the DLQ, by reason (invalid_json, schema, too_large, ...)",
    ["reason"],
)
REDIS_ERRORS = Counter(
    "tagger_redis_errors_total",
    "Redis calls that failed and will be retried, by error class",
    ["error"],
)
REDIS_RETRIES = Counter(
    "tagger_redis_retries_total", "Redis calls tried again after a failure (see errors)"
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
for _result in ("loaded", "rejected"):
    RULE_RELOADS.labels(_result)  # exported from the start: a first rejection is an increase
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


# The business view. Every worker reports the same deployment-wide numbers, read from
# Redis's audience sizes (ZCARD, not a scan) every few seconds: aggregate with max().
STAGE_USERS = Gauge(
    "tagger_stage_users", "Users per lifecycle stage (whole deployment; use max())", ["stage"]
)
AUDIENCE_USERS = Gauge(
    "tagger_audience_users", "Users holding each tag (whole deployment; use max())", ["tag"]
)


def count_output(output: Output) -> None:
    """Count one output sent, by kind and by what it says."""
    kind = kind_of(output)
    OUTPUTS.labels(kind.name).inc()
    counter = OUTPUTS_BY_KIND[kind.name]
    # A kind whose counter has no labels (identity merges) counts on the counter itself.
    (counter.labels(*kind.metric_labels(output)) if kind.metric.labels else counter).inc()


def exposition() -> bytes:
    """Every metric of this process in the Prometheus text format."""
    return generate_latest()

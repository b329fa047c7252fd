"""What the engine emits: tag changes, lifecycle transitions, alerts, identity merges and
forgotten people.

Every output carries a deterministic ``id`` derived from its cause (person, rule, the event
or timer deadline that caused it), so a subscriber can drop duplicates after a replay. It
names the id the event came under (``user_id``) and the person whose profile it is
(``person_id``): they differ for an event under a linked id (docs/identity.md).

Each output kind is declared once, here, by an ``OutputKind``: its name, its schema
version, the setting that names its topic, its metric, its JSON shape (each key with the
JSON Schema of its value: ``tagger schema outputs`` is made of these, by
``taggers.output_schema``) and serialisation, and its one-line display.
The worker's routing and metrics, the command line and the demo read these declarations;
``kind_of`` maps an output to its declaration with a ``match`` that mypy proves exhaustive,
so a kind added to ``Output`` without one is a type error, not a run-time fall-through.
Adding a kind: its dataclass, its member of ``Output``, its ``OutputKind`` in
``OUTPUT_KINDS`` and ``kind_of``, its topic setting (in Settings) or ``everywhere``, and
its rows in the docs; ``tests/unit/test_outputs.py`` says which is missing. Changing what
a kind writes (a key added, removed or renamed, a value's type or meaning) bumps its
``version``; ``tests/unit/test_outputs.py`` fails until it is bumped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar, assert_never

from mypy_extensions import mypyc_attr

from taggers.event_values import ID_PATTERN, MAX_ID_LENGTH
from taggers.events import format_ts


@dataclass(frozen=True, slots=True)
class Reason:
    """Why something happened: the rule, the rule-set version and the values it read."""

    rule: str
    version: str
    values: dict[str, Any]
    note: str = ""


# Every output's ``user_id`` is the id the event came under (for a deadline or a merge,
# the person's id) and ``person_id`` the person whose profile it is.


@dataclass(frozen=True, slots=True)
class TagChange:
    """A tag added to or removed from a person; ``opted_out``: whether the person had
    opted out of marketing then."""

    id: str
    user_id: str
    person_id: str
    tag: str
    op: Literal["add", "remove"]
    display: str | None
    at: int
    reason: Reason
    opted_out: bool
    kind: Literal["tag_change"] = "tag_change"


@dataclass(frozen=True, slots=True)
class Transition:
    """A person moved from one lifecycle stage to another (``from_stage`` None: first
    seen); ``opted_out``: whether the person had opted out of marketing then."""

    id: str
    user_id: str
    person_id: str
    from_stage: str | None
    to_stage: str
    at: int
    reason: Reason
    opted_out: bool
    kind: Literal["transition"] = "transition"


@dataclass(frozen=True, slots=True)
class Alert:
    """A signal that needs action now."""

    id: str
    user_id: str
    person_id: str
    name: str
    severity: str
    display: str | None
    at: int
    details: dict[str, Any]
    reason: Reason
    kind: Literal["alert"] = "alert"


@dataclass(frozen=True, slots=True)
class IdentityMerge:
    """The profile of ``absorbed`` merged into the person's (``person_id``, the survivor);
    ``ids``: every id of the person after the merge, the person's first."""

    id: str
    user_id: str
    person_id: str
    absorbed: str
    ids: tuple[str, ...]
    at: int
    reason: Reason
    kind: Literal["identity_merge"] = "identity_merge"


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A person deleted on request; ``ids``: every id deleted, the person's first."""

    id: str
    user_id: str
    person_id: str
    ids: tuple[str, ...]
    at: int
    reason: Reason
    kind: Literal["forgotten"] = "forgotten"


Output = TagChange | Transition | Alert | IdentityMerge | Forgotten

OutputT = TypeVar("OutputT", bound=Output)

# The JSON keys every output has, around its kind's own (``OutputKind.fields``).
HEAD_KEYS = ("kind", "schema_version", "id", "user_id", "person_id")
TAIL_KEYS = ("at", "reason")

# The Kafka headers of every output record: a consumer routes by them without parsing.
KIND_HEADER: Final = "tagger-kind"
VERSION_HEADER: Final = "tagger-schema-version"

# The JSON Schemas of output values, by what they hold (for ``OutputKind.fields``).
JsonSchema = Mapping[str, Any]
ID_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": ID_PATTERN,
    "description": "a user id, as events carry it",
}
IDS_SCHEMA: Final[dict[str, Any]] = {"type": "array", "items": ID_SCHEMA, "minItems": 1}
NAME_SCHEMA: Final[dict[str, Any]] = {"type": "string", "minLength": 1}
LABEL_SCHEMA: Final[dict[str, Any]] = {
    "type": ["string", "null"],
    "description": "the name for people, or null",
}
OPTED_OUT_SCHEMA: Final[dict[str, Any]] = {
    "type": "boolean",
    "description": "whether the person had opted out of marketing then",
}
VALUES_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "values by name, each in its JSON form (docs/outputs.md, Values)",
}
SEVERITIES: Final = ("info", "low", "medium", "high", "critical")
"""An alert's severities: a rule file's ``severity:`` (``taggers.rulefile.Severity``, as a
test holds it)."""


@dataclass(frozen=True, slots=True)
class OutputMetric:
    """The counter of one output kind by what its outputs say (``streams.metrics`` makes it).

    Its label values must come from a bounded set (the rule set's names), never a user id.
    """

    name: str
    help: str
    labels: tuple[str, ...]


# A plain Python class when compiled: mypyc's native classes cannot be generic dataclasses.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class OutputKind(Generic[OutputT]):
    """One output kind, declared once: everything outside the engine needs to know of it."""

    name: str  # the JSON "kind", and the label of tagger_outputs_total{kind}
    # Its JSON's "schema_version" and the tagger-schema-version header: bumped by any
    # change to what it writes (docs/outputs.md, Schema versions).
    version: int
    cls: type[OutputT]
    # The field of the worker's Settings naming its topic; None for a kind sent to
    # ``everywhere``, every other kind's topic (a subscriber of any of them must see it).
    topic_setting: str | None
    plural: str  # how summaries name its outputs: "tag changes"
    # Its own JSON keys, in order, between the common ones, each with its value's schema.
    fields: Mapping[str, JsonSchema]
    body: Callable[[OutputT], dict[str, Any]]  # those keys' values
    metric: OutputMetric
    metric_labels: Callable[[OutputT], tuple[str, ...]]  # an output's values of metric.labels
    describe: Callable[[Mapping[str, Any]], str]  # the JSON form, as "tag +vip (VIP)"
    tally: str | None = None  # a JSON key by which summaries also count its outputs
    everywhere: bool = False  # sent once to each output topic (of the kinds that have one)
    # Whether summaries name it when there is none (rare kinds: only when there are some).
    summary_when_none: bool = True

    def __post_init__(self) -> None:
        if (self.topic_setting is None) != self.everywhere:
            raise ValueError(f"{self.name}: a topic of its own, or everywhere: exactly one")

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key of its JSON form, in the order they are written."""
        return (*HEAD_KEYS, *self.fields, *TAIL_KEYS)

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers of its records: its name and its schema version."""
        return [(KIND_HEADER, self.name.encode()), (VERSION_HEADER, str(self.version).encode())]


def _label(record: Mapping[str, Any]) -> str:
    return f" ({record['display']})" if record.get("display") else ""


def _opted_out(record: Mapping[str, Any]) -> str:
    return " (opted out)" if record.get("opted_out") else ""


def _describe_tag_change(record: Mapping[str, Any]) -> str:
    sign = "+" if record["op"] == "add" else "-"
    return f"tag {sign}{record['tag']}{_label(record)}{_opted_out(record)}"


def _describe_transition(record: Mapping[str, Any]) -> str:
    return f"stage {record['from'] or '-'} -> {record['to']}{_opted_out(record)}"


def _describe_identity_merge(record: Mapping[str, Any]) -> str:
    return f"MERGE {record['absorbed']} into {record['survivor']} ({len(record['ids'])} ids)"


def _describe_forgotten(record: Mapping[str, Any]) -> str:
    return f"FORGOTTEN ({len(record['ids'])} ids deleted)"


def _describe_alert(record: Mapping[str, Any]) -> str:
    return f"ALERT {record['name']}{_label(record)} [{record['severity']}]"


TAG_CHANGE = OutputKind(
    name="tag_change",
    version=1,
    cls=TagChange,
    topic_setting="tag_changes_topic",
    plural="tag changes",
    fields={
        "tag": NAME_SCHEMA | {"description": "the tag; a family's member: family_value"},
        "op": {"enum": ["add", "remove"]},
        "display": LABEL_SCHEMA,
        "opted_out": OPTED_OUT_SCHEMA,
    },
    body=lambda o: {"tag": o.tag, "op": o.op, "display": o.display, "opted_out": o.opted_out},
    # A tag family counts under its rule's name (interest, not interest_美妆): bounded.
    metric=OutputMetric(
        "tagger_tag_changes_total",
        "Tag changes sent, by tag rule and op (add, remove)",
        ("tag", "op"),
    ),
    metric_labels=lambda o: (o.reason.rule, o.op),
    describe=_describe_tag_change,
)
TRANSITION = OutputKind(
    name="transition",
    version=1,
    cls=Transition,
    topic_setting="transitions_topic",
    plural="transitions",
    fields={
        "from": {"type": ["string", "null"], "description": "the stage left; null: first seen"},
        "to": NAME_SCHEMA | {"description": "the stage entered"},
        "opted_out": OPTED_OUT_SCHEMA,
    },
    body=lambda o: {"from": o.from_stage, "to": o.to_stage, "opted_out": o.opted_out},
    metric=OutputMetric(
        "tagger_transitions_total",
        "Lifecycle transitions sent, by stage from (none: first seen) and to",
        ("from_stage", "to_stage"),
    ),
    metric_labels=lambda o: (o.from_stage or "none", o.to_stage),
    describe=_describe_transition,
)
ALERT = OutputKind(
    name="alert",
    version=1,
    cls=Alert,
    topic_setting="alerts_topic",
    plural="alerts",
    fields={
        "name": NAME_SCHEMA | {"description": "the alert rule"},
        "severity": {"enum": list(SEVERITIES)},
        "display": LABEL_SCHEMA,
        "details": VALUES_SCHEMA | {"description": "the values its details: list, by name"},
    },
    body=lambda o: {
        "name": o.name,
        "severity": o.severity,
        "display": o.display,
        "details": o.details,
    },
    metric=OutputMetric("tagger_alerts_total", "Alerts sent, by alert name", ("name",)),
    metric_labels=lambda o: (o.name,),
    describe=_describe_alert,
    tally="name",
)

IDENTITY_MERGE = OutputKind(
    name="identity_merge",
    version=1,
    cls=IdentityMerge,
    topic_setting=None,
    everywhere=True,
    plural="identity merges",
    fields={
        "absorbed": ID_SCHEMA | {"description": "the id merged in, now a link to the person"},
        "survivor": ID_SCHEMA | {"description": "the person (person_id)"},
        "ids": IDS_SCHEMA | {"description": "every id of the person now, the person's first"},
    },
    body=lambda o: {"absorbed": o.absorbed, "survivor": o.person_id, "ids": list(o.ids)},
    metric=OutputMetric(
        "tagger_identity_merges_total", "Identity merges sent (two profiles became one)", ()
    ),
    metric_labels=lambda o: (),
    describe=_describe_identity_merge,
    summary_when_none=False,
)
FORGOTTEN = OutputKind(
    name="forgotten",
    version=1,
    cls=Forgotten,
    topic_setting=None,
    everywhere=True,
    plural="forgotten",
    fields={"ids": IDS_SCHEMA | {"description": "every id deleted, the person's first"}},
    body=lambda o: {"ids": list(o.ids)},
    metric=OutputMetric("tagger_forgotten_total", "People forgotten (deleted on request)", ()),
    metric_labels=lambda o: (),
    describe=_describe_forgotten,
    summary_when_none=False,
)

# Every kind, in the order topics, metrics and summaries list them.
OUTPUT_KINDS: tuple[OutputKind[Any], ...] = (
    TAG_CHANGE,
    TRANSITION,
    ALERT,
    IDENTITY_MERGE,
    FORGOTTEN,
)
TOPIC_KINDS: tuple[OutputKind[Any], ...] = tuple(k for k in OUTPUT_KINDS if not k.everywhere)
"""The kinds with a topic of their own (whose topics the ``everywhere`` kinds go to)."""
_BY_NAME: dict[str, OutputKind[Any]] = {kind.name: kind for kind in OUTPUT_KINDS}


def kind_of(output: Output) -> OutputKind[Any]:
    """The declaration of an output's kind."""
    match output:
        case TagChange():
            return TAG_CHANGE
        case Transition():
            return TRANSITION
        case Alert():
            return ALERT
        case IdentityMerge():
            return IDENTITY_MERGE
        case Forgotten():
            return FORGOTTEN
        case _:
            assert_never(output)


def kind_named(name: str) -> OutputKind[Any]:
    """The declaration of the kind an output's JSON form names; ValueError if none is."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValueError(f"unknown output kind {name!r} (known: {known})") from None


def output_id(person_id: str, cause: str, version: str, *parts: str) -> str:
    """A stable id for an output: the same person, cause (event or deadline), rule-set
    version and rule parts give the same id; a new rule-set version gives new ids."""
    text = "\x1f".join((person_id, cause, version, *parts))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _reason(reason: Reason) -> dict[str, Any]:
    data: dict[str, Any] = {"rule": reason.rule, "version": reason.version, "values": reason.values}
    if reason.note:
        data["note"] = reason.note
    return data


def output_to_dict(output: Output) -> dict[str, Any]:
    """The JSON form of an output, as written to topics and by ``tagger replay --json``:
    the keys of its kind's ``keys``, in that order."""
    kind = kind_of(output)
    data: dict[str, Any] = {
        "kind": output.kind,
        "schema_version": kind.version,
        "id": output.id,
        "user_id": output.user_id,
        "person_id": output.person_id,
    }
    data |= kind.body(output)
    data["at"] = format_ts(output.at)
    data["reason"] = _reason(output.reason)
    return data

"""The compiled rule set the engine runs, and what it is made of: aggregates, timers, tags,
transitions, the lifecycle and alerts (frozen dataclasses), with the names and bounds
every part of compiling shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Final

from taggers.aggregates import Kind, Window
from taggers.calendars import Calendar
from taggers.events import BehaviourEvent
from taggers.expr import DYN, STRING, TIMESTAMP, CompiledExpr, Type, map_of, object_of
from taggers.localdays import DEFAULT_ZONE, LocalDays
from taggers.yaml_source import Position

ANY: Final = "*"
EVENT_TYPE: Final = object_of(
    {
        "event_id": STRING,
        "user_id": STRING,
        "type": STRING,
        "ts": TIMESTAMP,
        "channel": STRING,
        "props": map_of(DYN),
    }
)
STRING_FIELDS: Final = frozenset({"event_id", "user_id", "type", "channel"})
NOW: Final = "now"
"""The step's time, a name every expression may read (the event's time, or the deadline's)."""
RESERVED_NAMES: Final = {NOW: "`now` is the step's time; give this one another name"}
_LOOKS_LIKE_TIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:")
EVENT_FIELDS: Final = dict(EVENT_TYPE.fields or ())
"""The names an aggregate's ``where:`` reads the event by (besides params and lists)."""

# Bounds on what a rule directory may hold (docs/rules.md, "Limits"), with those of
# yaml_source (each file) and expr.parser (each expression).
MAX_RULE_FILES: Final = 50
"""The most rule files in a directory."""
MAX_LIST_BYTES: Final = 2 * 1024 * 1024
"""The most bytes of word-list files read for a rule directory, all lists together."""
MAX_LIST_WORDS: Final = 100_000
"""The most words in a rule directory's word lists, all lists (files and inline) together."""
MAX_WORD_CHARS: Final = 40
"""The longest word in a word list, in characters: ``contains_any`` costs at most about
one set lookup per character of the text per distinct word length."""
LIST_SUFFIX: Final = ".txt"
MAX_PROBLEMS: Final = 100
"""Compiling stops after this many problems (a directory of thousands of broken rules is
judged as fast as one of a hundred)."""
MAX_EXPRESSION_CHARS: Final = 64_000
"""The most characters of all of a directory's expressions together (the default pack
has 1,500; each expression on its own at most 4,000): compiling stays well under a
second however the text is spread over rules. Counted before compiling, failing or not."""

_UNKNOWN_NAME: Final = re.compile(r"unknown name '(\w+)'")
Extractor = Callable[[BehaviourEvent], Any]
Filter = Callable[[BehaviourEvent], bool]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A compiled aggregate: which events feed it, what it reads and how it folds."""

    name: str
    kind_name: str
    kind: Kind
    types: frozenset[str] | None  # None: every event
    extract: Extractor | None
    window: Window | None
    limit: int
    value_type: Type
    close_types: frozenset[str] = frozenset()
    due: Extractor | None = None
    minus_types: frozenset[str] = frozenset()  # a sum's: their values are subtracted
    where: Filter | None = None  # the events it admits (None: all of its types)
    # A changed definition is a new aggregate: its state in a profile is kept under
    # ``key`` (name + a hash of the definition), so the state of an old definition is
    # never read as the new one's (a count's int as a top's dict, 90 days of buckets as
    # 180).
    key: str = ""

    @property
    def time_varying(self) -> bool:
        """Whether the value can change with no event, only because time passes."""
        return self.window is not None or self.kind.time is not None


@dataclass(frozen=True, slots=True)
class Timer:
    """Fires ``after`` (a duration expression) since the last event of some types."""

    anchor: str  # name of the internal last_ts aggregate
    after: CompiledExpr


@dataclass(frozen=True, slots=True)
class Tag:
    """A compiled tag or tag family."""

    name: str
    display: str | None
    when: CompiledExpr | None
    exit_when: CompiledExpr | None
    value: CompiledExpr | None
    values: frozenset[str] | None
    group: str | None
    expires_ms: int | None
    reads: frozenset[str]


@dataclass(frozen=True, slots=True)
class Transition:
    """A compiled lifecycle transition; ``rule`` identifies it in reasons and timers."""

    rule: str
    sources: frozenset[str]
    to: str
    when: CompiledExpr | None
    on: frozenset[str] | None
    timer: Timer | None
    alert: str | None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Stages with display names, the initial stage and transitions by source stage."""

    initial: str
    stages: dict[str, str | None]
    by_stage: dict[str, tuple[Transition, ...]]


@dataclass(frozen=True, slots=True)
class Alert:
    """A compiled alert."""

    name: str
    severity: str
    display: str | None
    when: CompiledExpr | None
    on: frozenset[str] | None
    timer: Timer | None
    pending: str | None
    before_ms: int
    details: tuple[tuple[str, CompiledExpr], ...]  # name, and the expression it shows
    reads: frozenset[str]
    calendar: Calendar | None = None

    @property
    def detail_reads(self) -> frozenset[str]:
        """The names the details read."""
        return frozenset().union(*(shown.reads for _, shown in self.details))

    @property
    def edge(self) -> bool:
        """Edge-triggered: fires when ``when`` turns true, re-arms when it turns false."""
        return (
            self.when is not None
            and self.on is None
            and self.timer is None
            and self.calendar is None
        )

    @property
    def raised_by_transition(self) -> bool:
        """Has no trigger of its own: a transition's ``alert:`` raises it."""
        return (
            self.when is None
            and self.on is None
            and self.timer is None
            and not self.pending
            and self.calendar is None
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rule set. ``version`` is a hash of the files' contents.

    Immutable: what the engine indexes or caches at run time lives in its plan
    (``taggers.engine.plan``), built once per rule set, never here.
    """

    version: str
    directory: str
    aggregates: dict[str, Aggregate]
    tags: tuple[Tag, ...]
    groups: dict[str, tuple[Tag, ...]]
    lifecycle: Lifecycle | None
    alerts: dict[str, Alert]
    lists: dict[str, tuple[str, ...]]
    params: dict[str, Any]
    time_varying: frozenset[str] = frozenset()  # names whose value time alone can change
    types: dict[str, Type] = field(default_factory=dict)  # of every name rules may read
    declared_at: dict[str, Position] = field(default_factory=dict)  # aggregate -> where
    days: LocalDays = field(default_factory=lambda: LocalDays(UTC, DEFAULT_ZONE))

    @property
    def timezone(self) -> str:
        """The rule set's time zone (``timezone:`` in a rule file; UTC by default)."""
        return self.days.name


def field_extractor(path: str) -> Extractor | None:
    """A getter for an event field path: channel, type, ts, event_id or props.a.b."""
    if path in STRING_FIELDS or path == "ts":
        return lambda event: getattr(event, path)
    if path.startswith("props.") and len(path) > len("props."):
        keys = path.split(".")[1:]
        if len(keys) == 1:
            key = keys[0]
            return lambda event: event.props.get(key)

        def nested(event: BehaviourEvent) -> Any:
            value: Any = event.props
            for key in keys:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value

        return nested
    return None

"""Load, validate and compile a rule directory into a ``RuleSet`` the engine runs.

Compilation happens once per load. Every problem found is reported with file:line:column
and a hint; a rule set with any problem is rejected as a whole (``RuleSetError``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from taggers.aggregates import (
    DEFAULT_KEYS,
    KINDS,
    MAX_BUCKETS,
    OPTIONS,
    Kind,
    Window,
    keyed,
    takes_keys,
    value_key,
)
from taggers.aggregates import bucket_size as _bucket_size
from taggers.calendars import Calendar, dated_line, time_of_day
from taggers.durations import DAY_MS, DurationError, parse_duration
from taggers.events import EVENT_TYPES, BehaviourEvent, to_epoch_ms
from taggers.expr import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    CompiledExpr,
    ExprError,
    Type,
    compile_expression,
    list_of,
    map_of,
    object_of,
)
from taggers.expr.checked import article, suggest
from taggers.expr.types import assignable
from taggers.expr.words import normalised
from taggers.localdays import DEFAULT_ZONE, LocalDays, UnknownZoneError, load_zone, zone_names
from taggers.rulefile import (
    AggregateSpec,
    AlertSpec,
    CalendarSpec,
    RuleFile,
    TagSpec,
    TransitionSpec,
)
from taggers.yaml_source import (
    MAX_FILE_BYTES,
    Budget,
    Path_,
    Position,
    Problem,
    RuleSetError,
    SourceMap,
    TooLargeError,
    load_yaml,
    read_bounded,
)

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


class _Base:
    """What every section's compiling shares: the problems found so far, declared names,
    event types, durations and expressions (within the directory's budget)."""

    def __init__(self, files: list[tuple[RuleFile, SourceMap]], directory: Path) -> None:
        self.files = files
        self.directory = directory
        self.problems: list[Problem] = []
        self.aggregates: dict[str, Aggregate] = {}
        self.lists: dict[str, tuple[str, ...]] = {}
        self.list_bytes_left = MAX_LIST_BYTES
        self.list_words_left = MAX_LIST_WORDS
        self.params: dict[str, Any] = {}
        self.names: dict[str, Type] = {}
        self.seen: dict[tuple[str, str], Position] = {}
        self.transition_alerts: list[tuple[str, Position]] = []
        self.chars_left = MAX_EXPRESSION_CHARS
        self.constants: dict[str, Any] = {}
        self.days = LocalDays(UTC, DEFAULT_ZONE)  # the rule set's days (compile_timezone)
        self.list_places: dict[str, tuple[Position, ...]] = {}  # where each entry is written

    def problem(self, where: Position, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(where, message, hint))
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems.append(
                Problem(where, f"stopped after {MAX_PROBLEMS} problems", "fix these first")
            )
            raise RuleSetError(self.problems)

    def declare(self, section: str, name: str, source: SourceMap, path: Path_) -> bool:
        """Record a name; report a duplicate across files. False if it was a duplicate."""
        where = source.key(path)
        if name in RESERVED_NAMES and section in ("param", "aggregate"):
            self.problem(where, f"{name!r} is a name of the language", RESERVED_NAMES[name])
            return False
        first = self.seen.get((section, name))
        if first is not None:
            self.problem(where, f"duplicate {section} name {name!r}", f"first defined at {first}")
            return False
        self.seen[(section, name)] = where
        return True

    def event_types(self, value: str | list[str], where: Position) -> frozenset[str] | None:
        types = [value] if isinstance(value, str) else value
        if ANY in types:
            return None
        for name in types:
            if name not in EVENT_TYPES:
                close = difflib.get_close_matches(name, EVENT_TYPES, n=1)
                if close:
                    self.problem(
                        where, f"unknown event type {name!r}", f"did you mean {close[0]!r}?"
                    )
        return frozenset(types)

    def duration(self, text: str, where: Position) -> int | None:
        try:
            return parse_duration(text)
        except DurationError as error:
            self.problem(where, str(error))
            return None

    def expression(
        self,
        text: str,
        source: SourceMap,
        path: Path_,
        *,
        expect: Type | None,
        with_event: bool = False,
        names: Mapping[str, Type] | None = None,
        unknown: Callable[[str], str | None] | None = None,
    ) -> CompiledExpr | None:
        """Compile an expression reading the rule set's names (or ``names``); a problem
        is reported where it is, with ``unknown(name)`` as the hint for an unknown name."""
        if names is None:
            # Read, never copied: a copy per expression would cost names x expressions.
            names = ChainMap({"event": EVENT_TYPE}, self.names) if with_event else self.names
        self.chars_left -= len(text)
        if self.chars_left < 0:
            if self.chars_left + len(text) >= 0:  # said once, where it ran out
                self.problem(
                    source.at(path),
                    f"the expressions together have more than {MAX_EXPRESSION_CHARS} characters",
                    "rule sets need far fewer; look for generated or repeated rules",
                )
            return None
        try:
            return compile_expression(
                text, names, expect=expect, constants=self.constants, zone=self.days.zone
            )
        except ExprError as error:
            hint = error.hint
            unknown_name = _UNKNOWN_NAME.match(error.message)
            if unknown is not None and unknown_name is not None:
                hint = unknown(unknown_name.group(1)) or hint
            elif not with_event and error.message.startswith("unknown name 'event'"):
                hint = "`event` is only available in rules with `on:` (per-event rules)"
            self.problem(source.at(path).offset(text, error.offset), error.message, hint)
            return None
        except Exception as error:  # a bug reached by this text: its problem, not a crash
            self.problem(source.at(path), f"cannot compile this expression: {_failure(error)}")
            return None


class _Data(_Base):
    """The time zone, params and word lists: the constants expressions read."""

    def compile_timezone(self) -> None:
        """The rule set's time zone: set by at most one file (or by several that agree)."""
        found = [(f.timezone, s) for f, s in self.files if f.timezone is not None]
        if not found:
            return
        (name, source), *others = found
        first = source.at(("timezone",))
        for other_name, other in others:
            if other_name != name:
                self.problem(
                    other.at(("timezone",)),
                    f"timezone {other_name!r} disagrees with {name!r}",
                    f"a rule set has one time zone; it is set at {first}",
                )
        try:
            zone = load_zone(name)
        except UnknownZoneError:
            close = difflib.get_close_matches(name, zone_names(), n=1)
            self.problem(
                first,
                f"unknown time zone {name!r}",
                f"did you mean {close[0]!r}?" if close else "an IANA name: Asia/Shanghai, UTC",
            )
            return
        self.days = LocalDays(zone, name)

    def compile_params(self) -> None:
        for rule_file, source in self.files:
            for name, value in rule_file.params.items():
                path: Path_ = ("params", name)
                if not self.declare("param", name, source, path):
                    continue
                found = self.param(value, source.at(path))
                if found is not None:
                    self.params[name], self.names[name] = found

    def param(
        self, value: bool | int | float | str | datetime, where: Position
    ) -> tuple[Any, Type] | None:
        """A parameter's value and type: strings that are durations (60d) become
        durations, and ISO-8601 times with an offset (quoted or not) timestamps."""
        if isinstance(value, bool):
            return value, BOOL
        if isinstance(value, int):
            return value, INT
        if isinstance(value, float):
            return value, DOUBLE
        if isinstance(value, datetime):
            value = value.isoformat()  # YAML's reading of an unquoted time: checked alike
        try:
            return parse_duration(value), DURATION
        except DurationError:
            pass
        if not _LOOKS_LIKE_TIME.match(value):
            return value, STRING
        try:
            return to_epoch_ms(value), TIMESTAMP
        except ValueError as error:
            self.problem(where, str(error), "a timestamp param: 2026-06-18T00:00:00+08:00")
            return None

    def compile_lists(self) -> None:
        for rule_file, source in self.files:
            for name, entry in rule_file.lists.items():
                path: Path_ = ("lists", name)
                if not self.declare("list", name, source, path):
                    continue
                if isinstance(entry, list):
                    words = tuple(entry)
                    where = source.at(path)
                    places = tuple(source.at((*path, i)) for i in range(len(words)))
                else:
                    where = source.at((*path, "file"))
                    found = self.list_file(entry.file, where)
                    if found is None:
                        continue
                    words, places = found
                if self.list_bounded(words, where):
                    self.lists[name] = words
                    self.list_places[name] = places
        self.names["lists"] = object_of({name: list_of(STRING) for name in self.lists})
        self.constants = {"lists": self.lists, **self.params}  # final from here on

    def list_file(
        self, name: str, where: Position
    ) -> tuple[tuple[str, ...], tuple[Position, ...]] | None:
        """The words of a list file: a .txt file inside the rule directory (so that the
        directory's version covers it and a reload sees it change), regular, bounded."""
        try:
            data = read_bounded(self.directory / name, self.list_bytes_left, self.directory)
            self.list_bytes_left -= len(data)
            lines = data.decode("utf-8").splitlines()
        except TooLargeError:
            self.problem(
                where,
                f"word list {name!r} is too large: the lists together may have"
                f" {MAX_LIST_BYTES} bytes",
                "keep what the rules need; split a list the rules do not read whole",
            )
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problem(
                where,
                f"cannot read word list: {error}",
                "a word list is a UTF-8 text file inside the rule directory",
            )
            return None
        if not name.endswith(LIST_SUFFIX):
            self.problem(
                where,
                f"a word list is a {LIST_SUFFIX} file, not {name!r}",
                f"rename it, e.g. lists/words{LIST_SUFFIX}",
            )
            return None
        shown = str(self.directory / name)
        found = [
            (word, Position(shown, number, 1))
            for number, line in enumerate(lines, 1)
            if (word := line.split("#", 1)[0].strip())
        ]
        return tuple(w for w, _ in found), tuple(p for _, p in found)

    def list_bounded(self, words: tuple[str, ...], where: Position) -> bool:
        self.list_words_left -= len(words)
        if self.list_words_left < 0:
            self.problem(
                where,
                f"too many words: the word lists together may have {MAX_LIST_WORDS}"
                f" (this one has {len(words)})",
                "keep what the rules need",
            )
            return False
        long = next((w for w in words if len(w) > MAX_WORD_CHARS or _reads_long(w)), None)
        if long is not None:
            self.problem(
                where,
                f"a word list's words are at most {MAX_WORD_CHARS} characters, as read"
                f" (full-width and compatibility forms spelt out): {long[:20]!r}…",
            )
            return False
        return True


class _Aggregates(_Data):
    """Aggregates, as their kinds declare (``taggers.aggregates.KINDS``), and the timers
    that count from the last event of some types."""

    def compile_aggregates(self) -> None:
        for rule_file, source in self.files:
            for name, spec in rule_file.aggregates.items():
                path: Path_ = ("aggregates", name)
                if self.declare("aggregate", name, source, path):
                    aggregate = self.aggregate(name, spec, source, path)
                    if aggregate is not None:
                        aggregate = _identified(aggregate, spec)
                        self.aggregates[name] = aggregate
                        self.names[name] = aggregate.value_type

    def aggregate(
        self, name: str, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> Aggregate | None:
        """Compile one aggregate as its kind's declaration (``KINDS``) says."""
        kind = KINDS[spec.kind]
        fed = self.feeds(kind, spec, source, path)
        if fed is None:
            return None
        types, extract, value_type = fed
        window = None
        if spec.window is not None:
            window = self.window(spec.window, kind, source.at((*path, "window")))
        options = self.options(kind, spec, source, path)
        if options is None:
            return None
        close, due, minus = options
        for option in kind.options:
            if option.adjust is not None and getattr(spec, option.name) is not None:
                kind = option.adjust(kind)
        if minus:
            extract = _negated(extract, minus)
        admits = None
        if spec.where is not None:
            admits = self.event_filter(spec.where, source, (*path, "where"))
            if admits is None:
                return None
        if spec.by is not None or spec.keys is not None:
            found = self.by_key(kind, spec, extract, source, path)
            if found is None:
                return None
            kind, extract = found
            value_type = map_of(value_type)
        limit = spec.limit or KINDS[spec.kind].default_limit
        return Aggregate(
            name,
            spec.kind,
            kind,
            types,
            extract,
            window,
            limit,
            value_type,
            close,
            due,
            minus_types=minus,
            where=admits,
        )

    def feeds(
        self, kind: Kind, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> tuple[frozenset[str] | None, Extractor | None, Type] | None:
        """The event types that feed an aggregate, the field it reads and its value type."""
        target = getattr(spec, kind.name)
        where = source.at((*path, kind.name))
        if kind.shape == "types":
            if spec.of is not None:
                self.problem(
                    source.key((*path, "of")),
                    f"{kind.name} names its event types itself",
                    f"write {kind.name}: {spec.of}",
                )
            return self.event_types(target, where), None, kind.result_type
        extract = field_extractor(target)
        if extract is None:
            self.problem(where, f"unknown event field {target!r}", _FIELDS_HINT)
            return None
        value_type = STRING if target in STRING_FIELDS and kind.typed_by_field else kind.result_type
        types = None if spec.of is None else self.event_types(spec.of, source.at((*path, "of")))
        return types, extract, value_type

    def options(
        self, kind: Kind, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> tuple[frozenset[str], Extractor | None, frozenset[str]] | None:
        """The close types, due field and minus types of a kind that takes them; None on
        a problem."""
        for option in OPTIONS.values():
            if option not in kind.options and getattr(spec, option.name) is not None:
                takers = _said([k.name for k in KINDS.values() if option in k.options])
                self.problem(
                    source.key((*path, option.name)), f"'{option.name}' only goes with {takers}"
                )
        missing = [key for key in kind.requires if getattr(spec, key) is None]
        if missing:
            self.problem(
                source.key(path),
                f"{kind.name} needs {_said([repr(key) for key in kind.requires])}",
                kind.example.strip("{}"),
            )
            return None
        takes = {option.name for option in kind.options}
        due: Extractor | None = None
        if spec.due is not None and "due" in takes:
            due = field_extractor(spec.due)
            if due is None:
                self.problem(source.at((*path, "due")), f"unknown event field {spec.due!r}")
                return None
        close: frozenset[str] = frozenset()
        if spec.close is not None and "close" in takes:
            close = self.event_types(spec.close, source.at((*path, "close"))) or frozenset()
        minus: frozenset[str] = frozenset()
        if spec.minus is not None and "minus" in takes:
            minus = self.minus_types(spec, source, path)
        return close, due, minus

    def minus_types(self, spec: AggregateSpec, source: SourceMap, path: Path_) -> frozenset[str]:
        """A sum's ``minus`` types: named ones (not every event), none of them in ``of``."""
        assert spec.minus is not None
        where = source.at((*path, "minus"))
        minus = self.event_types(spec.minus, where)
        if minus is None:
            self.problem(where, "minus names event types, not '*'", "e.g. minus: refund")
            return frozenset()
        of = None if spec.of is None else frozenset(_listed(spec.of))
        if of is not None and ANY in of:
            of = None
        both = sorted(minus & of) if of is not None else []
        if of is None or both:
            self.problem(
                where,
                "an event type is added or subtracted, not both: "
                + (f"{_said(both)} is in 'of' too" if both else "give 'of' its types"),
                "e.g. {sum: props.amount, of: purchase, minus: refund}",
            )
        return minus

    def event_filter(self, text: str, source: SourceMap, path: Path_) -> Filter | None:
        """An aggregate's ``where:``: a condition over the event's fields, params and lists."""
        names = ChainMap(EVENT_FIELDS, {name: self.names[name] for name in self.constants})
        compiled = self.expression(
            text, source, path, expect=BOOL, names=names, unknown=self.filter_hint
        )
        return None if compiled is None else _event_filter(compiled)

    def filter_hint(self, name: str) -> str | None:
        """Why a filter cannot read ``name``, if it is a name other rules read."""
        if name == "event":
            return "a filter reads the event's fields as names: props.amount, channel, type"
        declared = {n for rule_file, _ in self.files for n in rule_file.aggregates}
        if name == "stage" or name in declared:
            what = "the stage" if name == "stage" else f"aggregate {name!r}"
            return (
                f"a filter decides which events feed the aggregate, before any rule runs:"
                f" it reads the event, params and lists, not {what}"
            )
        return None

    def by_key(
        self,
        kind: Kind,
        spec: AggregateSpec,
        extract: Extractor | None,
        source: SourceMap,
        path: Path_,
    ) -> tuple[Kind, Extractor] | None:
        """The keyed kind (``by:``) and the extractor of (key, value) pairs it folds."""
        if spec.by is None:
            self.problem(source.key((*path, "keys")), "'keys' goes with 'by'", "by: props.category")
            return None
        if not takes_keys(kind):
            takers = _said([k.name for k in KINDS.values() if takes_keys(k)])
            self.problem(
                source.key((*path, "by")),
                f"{kind.name} cannot be kept per key",
                f"'by' goes with {takers}",
            )
            return None
        key_of = field_extractor(spec.by)
        if key_of is None:
            self.problem(source.at((*path, "by")), f"unknown event field {spec.by!r}", _FIELDS_HINT)
            return None
        return keyed(kind, spec.keys or DEFAULT_KEYS), _keyed_extractor(key_of, extract)

    def window(self, text: str, kind: Kind, where: Position) -> Window | None:
        window_ms = self.duration(text, where)
        if window_ms is None:
            return None
        if not kind.windowable:
            timed = _said([k.name for k in KINDS.values() if not k.windowable])
            self.problem(
                where, f"{kind.name} cannot have a window", f"{timed} already depend on time"
            )
            return None
        size = _bucket_size(window_ms)
        if window_ms % size or window_ms // size > MAX_BUCKETS:
            self.problem(
                where,
                f"window {text} is not supported",
                f"use whole hours up to {MAX_BUCKETS}h or whole days up to {MAX_BUCKETS}d",
            )
            return None
        # Day buckets are the rule set's local days; UTC's are plain arithmetic.
        days = None if size != DAY_MS or self.days.fixed == 0 else self.days
        return Window(window_ms, size, days)

    def anchor(self, since: str | list[str], where: Position) -> str:
        """The internal last-seen aggregate a timer counts from (created once per type set)."""
        types = self.event_types(since, where)
        name = "_last:" + (",".join(sorted(types)) if types else ANY)
        self.seen.setdefault(("aggregate", name), where)  # the first rule counting from it
        if name not in self.aggregates:
            # The name says all there is to it: it is its own key.
            self.aggregates[name] = Aggregate(
                name,
                "last_ts",
                KINDS["last_ts"],
                types,
                None,
                None,
                1,
                TIMESTAMP,
                key=name,
            )
        return name

    def timer(
        self, since: str | list[str] | None, after: str | None, source: SourceMap, path: Path_
    ) -> Timer | None:
        if since is None or after is None:
            return None
        anchor = self.anchor(since, source.at((*path, "since")))
        compiled = self.expression(after, source, (*path, "after"), expect=DURATION)
        return None if compiled is None else Timer(anchor, compiled)


class _Calendars(_Aggregates):
    """Calendar triggers (``taggers.calendars``): their dates, shift and time of day."""

    def calendar(self, spec: CalendarSpec, source: SourceMap, path: Path_) -> Calendar | None:
        """Compile an alert's ``calendar:``; None on a problem (reported)."""
        shift = 0
        for key, sign in (("before", -1), ("after", 1)):
            text = getattr(spec, key)
            if text is not None:
                found = self.shift(text, source.at((*path, key)))
                if found is None:
                    return None
                shift = sign * found
        time_ms = 0
        if spec.time is not None:
            found_time = time_of_day(spec.time)
            if found_time is None:
                self.problem(
                    source.at((*path, "time")),
                    f"not a time of day: {spec.time!r}",
                    'write HH:MM, e.g. time: "09:00" (quoted)',
                )
                return None
            time_ms = found_time
        shape = Calendar(shift_ms=shift, time_ms=time_ms)
        if spec.dates is not None:
            return self.dated(spec.dates, shape, source, (*path, "dates"))
        if spec.at is not None:
            return self.instants(spec.at, shape, source, (*path, "at"))
        assert spec.yearly is not None
        return self.yearly(spec.yearly, shape, source, (*path, "yearly"))

    def shift(self, text: str, where: Position) -> int | None:
        """A calendar's ``before``/``after``: a duration (``3d``) or the name of a duration
        param (``birthday_soon_before``), so that the pack's params hold it."""
        known = self.names.get(text)
        if known == DURATION and text in self.params:
            return int(self.params[text])
        if known is not None:
            self.problem(
                where,
                f"{text!r} is not a duration param",
                "write a duration (3d) or the name of a param like birthday_lead: 3d",
            )
            return None
        return self.duration(text, where)

    def dated(self, name: str, shape: Calendar, source: SourceMap, path: Path_) -> Calendar | None:
        if name not in self.lists:
            self.problem(
                source.at(path),
                f"unknown list {name!r}",
                suggest(name, list(self.lists))
                or "declare it under lists: holidays: {file: lists/holidays.txt}",
            )
            return None
        by_date: dict[date, list[str]] = {}
        ok = True
        for line, where in zip(self.lists[name], self.list_places[name], strict=True):
            found = dated_line(line)
            if found is None:
                self.problem(
                    where,
                    f"not a dated line: {line[:40]!r}",
                    "a calendar's list has lines `YYYY-MM-DD name`, e.g. 2027-02-06 春节",
                )
                ok = False
                continue
            by_date.setdefault(found[0], []).append(found[1])
        if not ok:
            return None
        occurrences = [shape.on(day, self.days, ", ".join(names)) for day, names in by_date.items()]
        return replace(shape, fixed=tuple(sorted(occurrences, key=lambda o: o.due)))

    def instants(
        self, entries: list[str | datetime], shape: Calendar, source: SourceMap, path: Path_
    ) -> Calendar | None:
        instants: set[int] = set()
        for i, entry in enumerate(entries):
            where = source.at((*path, i))
            if isinstance(entry, str) and entry in self.params:
                if self.names.get(entry) != TIMESTAMP:
                    self.problem(
                        where,
                        f"param {entry!r} is not a timestamp",
                        "a timestamp param is written 2026-06-18T00:00:00+08:00",
                    )
                    return None
                instants.add(self.params[entry])
                continue
            try:
                text = entry.isoformat() if isinstance(entry, datetime) else entry
                instants.add(to_epoch_ms(text))
            except ValueError as error:
                close = difflib.get_close_matches(str(entry), self.params, n=1)
                hint = f"did you mean {close[0]!r}?" if close else None
                self.problem(where, f"not a timestamp param or time: {error}", hint)
                return None
        occurrences = (shape.at_instant(ts, self.days) for ts in sorted(instants))
        return replace(shape, fixed=tuple(occurrences))

    def yearly(self, name: str, shape: Calendar, source: SourceMap, path: Path_) -> Calendar | None:
        aggregate = self.aggregates.get(name)
        if aggregate is None or name.startswith("_"):
            self.problem(
                source.at(path),
                f"unknown aggregate {name!r}",
                suggest(name, list(self.aggregates))
                or "e.g. birthday: {last: props.birthday, of: member_join}",
            )
            return None
        if aggregate.value_type not in (STRING, TIMESTAMP, DYN):
            self.problem(
                source.at(path),
                f"a yearly date is a date text or a timestamp, but {name!r} is"
                f" {article(aggregate.value_type)}",
                "e.g. {last: props.birthday, of: member_join} or {last_ts: member_join}",
            )
            return None
        return replace(shape, yearly=name)


class _Compiler(_Calendars):
    """Compiles merged rule files, collecting every problem instead of stopping at one:
    the lifecycle, tags and alerts over the sections below them, then the rule set."""

    def compile_lifecycle(self) -> Lifecycle | None:
        found = [(f.lifecycle, s) for f, s in self.files if f.lifecycle is not None]
        if not found:
            return None
        (spec, source), *others = found
        for _, other in others:
            self.problem(
                other.key(("lifecycle",)),
                "lifecycle is defined in more than one file",
                f"keep one; the first is at {source.key(('lifecycle',))}",
            )
        stages = dict(spec.stages)
        self.names["stage"] = STRING
        if spec.initial not in stages:
            self.stage_problem(spec.initial, stages, source.at(("lifecycle", "initial")))
        reached = {spec.initial}
        by_stage: dict[str, list[Transition]] = {stage: [] for stage in stages}
        for index, step in enumerate(spec.transitions):
            path: Path_ = ("lifecycle", "transitions", index)
            transition = self.transition(step, index, stages, source, path)
            if transition is None:
                continue
            reached.add(transition.to)
            for stage in sorted(transition.sources):
                by_stage[stage].append(transition)
        for stage in stages:
            if stage not in reached:
                self.problem(
                    source.key(("lifecycle", "stages", stage)),
                    f"stage {stage!r} is unreachable: no transition leads to it",
                    "add a transition with `to: " + stage + "` or remove the stage",
                )
        return Lifecycle(spec.initial, stages, {k: tuple(v) for k, v in by_stage.items()})

    def stage_problem(self, name: str, stages: Mapping[str, object], where: Position) -> None:
        close = difflib.get_close_matches(name, stages, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "stages are: " + ", ".join(stages)
        self.problem(where, f"unknown stage {name!r}", hint)

    def transition(
        self,
        step: TransitionSpec,
        index: int,
        stages: Mapping[str, object],
        source: SourceMap,
        path: Path_,
    ) -> Transition | None:
        sources = [step.from_] if isinstance(step.from_, str) else step.from_
        ok = True
        for i, stage in enumerate(sources):
            if stage not in stages:
                where = source.at(
                    (*path, "from") if isinstance(step.from_, str) else (*path, "from", i)
                )
                self.stage_problem(stage, stages, where)
                ok = False
        if step.to not in stages:
            self.stage_problem(step.to, stages, source.at((*path, "to")))
            ok = False
        on = None if step.on is None else self.event_types(step.on, source.at((*path, "on")))
        when = None
        if step.when is not None:
            when = self.expression(
                step.when, source, (*path, "when"), expect=BOOL, with_event=step.on is not None
            )
            ok = ok and when is not None
        timer = self.timer(step.since, step.after, source, path)
        if step.since is not None and timer is None:
            ok = False
        if step.alert is not None:
            self.transition_alerts.append((step.alert, source.at((*path, "alert"))))
        if not ok:
            return None
        rule = f"lifecycle.{'+'.join(sources)}->{step.to}#{index + 1}"
        return Transition(rule, frozenset(sources), step.to, when, on, timer, step.alert)

    def compile_tags(self) -> tuple[Tag, ...]:
        tags: list[Tag] = []
        for rule_file, source in self.files:
            for name, spec in rule_file.tags.items():
                path: Path_ = ("tags", name)
                if self.declare("tag", name, source, path):
                    tag = self.tag(name, spec, source, path)
                    if tag is not None:
                        tags.append(tag)
        return tuple(tags)

    def tag(self, name: str, spec: TagSpec, source: SourceMap, path: Path_) -> Tag | None:
        when = exit_when = value = None
        if spec.when is not None:
            when = self.expression(spec.when, source, (*path, "when"), expect=BOOL)
            if when is None:
                return None
        if spec.exit_when is not None:
            exit_when = self.expression(spec.exit_when, source, (*path, "exit_when"), expect=BOOL)
            if exit_when is None:
                return None
        if spec.value is not None:
            value = self.family_value(spec.value, source, (*path, "value"))
            if value is None:
                return None
        expires = None
        if spec.expires_after is not None:
            expires = self.duration(spec.expires_after, source.at((*path, "expires_after")))
            if expires is None:
                return None
        reads = frozenset().union(*(e.reads for e in (when, exit_when, value) if e is not None))
        values = None if spec.values is None else frozenset(spec.values)
        return Tag(name, spec.display, when, exit_when, value, values, spec.group, expires, reads)

    def family_value(self, text: str, source: SourceMap, path: Path_) -> CompiledExpr | None:
        """A family's ``value:``: a string (one member at a time) or a list of strings
        (a member per item)."""
        value = self.expression(text, source, path, expect=None)
        if value is None:
            return None
        if not (assignable(value.type, STRING) or assignable(value.type, list_of(STRING))):
            self.problem(
                source.at(path).offset(text, 0),
                f"a family's value is a string or a list of strings, not {article(value.type)}",
                "e.g. value: top_category_30d, or value: keys_at_least(orders_by_category, 2)",
            )
            return None
        return value

    def compile_alerts(self) -> dict[str, Alert]:
        alerts: dict[str, Alert] = {}
        for rule_file, source in self.files:
            for name, spec in rule_file.alerts.items():
                path: Path_ = ("alerts", name)
                if self.declare("alert", name, source, path):
                    alert = self.alert(name, spec, source, path)
                    if alert is not None:
                        alerts[name] = alert
        return alerts

    def alert(self, name: str, spec: AlertSpec, source: SourceMap, path: Path_) -> Alert | None:
        on = None if spec.on is None else self.event_types(spec.on, source.at((*path, "on")))
        when = None
        if spec.when is not None:
            when = self.expression(
                spec.when, source, (*path, "when"), expect=BOOL, with_event=spec.on is not None
            )
            if when is None:
                return None
        timer = self.timer(spec.since, spec.after, source, path)
        if spec.since is not None and timer is None:
            return None
        calendar = None
        if spec.calendar is not None:
            calendar = self.calendar(spec.calendar, source, (*path, "calendar"))
            if calendar is None:
                return None
        before_ms = 0
        if spec.pending is not None:
            target = self.aggregates.get(spec.pending)
            if target is None or target.kind_name != "pending":
                self.problem(
                    source.at((*path, "pending")),
                    f"{spec.pending!r} is not a pending aggregate",
                    "declare it under aggregates with `pending: props.<key>`",
                )
                return None
            before_ms = self.duration(spec.before or "", source.at((*path, "before"))) or 0
        details = self.details(spec, source, path)
        reads = frozenset() if when is None else when.reads
        if calendar is not None and calendar.yearly is not None:
            reads |= {calendar.yearly}
        return Alert(
            name,
            spec.severity,
            spec.display,
            when,
            on,
            timer,
            spec.pending,
            before_ms,
            details,
            reads,
            calendar,
        )

    def details(
        self, spec: AlertSpec, source: SourceMap, path: Path_
    ) -> tuple[tuple[str, CompiledExpr], ...]:
        """An alert's details, each a name and the expression it shows: a detail written
        as a name shows that value; ``name: "expression"`` may read what ``when`` reads."""
        found: list[tuple[str, CompiledExpr]] = []
        for i, detail in enumerate(spec.details):
            at: Path_ = (*path, "details", i)
            if isinstance(detail, str):
                if detail not in self.names or detail == "lists":
                    close = difflib.get_close_matches(detail, self.names, n=1)
                    self.problem(
                        source.at(at),
                        f"unknown name {detail!r}",
                        f"did you mean {close[0]!r}?"
                        if close
                        else 'details name values, or give one an expression: - n: "orders + 1"',
                    )
                    continue
                name, text = detail, detail
            else:
                ((name, text),) = detail.items()
                at = (*at, name)
            compiled = self.expression(text, source, at, expect=DYN, with_event=spec.on is not None)
            if compiled is not None:
                found.append((name, compiled))
        return tuple(found)

    def compile(self, version: str) -> RuleSet:
        self.compile_timezone()
        self.names[NOW] = TIMESTAMP
        self.compile_params()
        self.compile_lists()
        self.compile_aggregates()
        lifecycle = self.compile_lifecycle()
        tags = self.compile_tags()
        alerts = self.compile_alerts()
        for alert_name, where in self.transition_alerts:
            alert = alerts.get(alert_name)
            if alert is None:
                close = difflib.get_close_matches(alert_name, alerts, n=1)
                self.problem(
                    where,
                    f"unknown alert {alert_name!r}",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "declare it under alerts with a severity and no trigger",
                )
            elif not alert.raised_by_transition:
                self.problem(
                    where,
                    f"alert {alert_name!r} has its own trigger",
                    "an alert raised by a transition declares only severity/display",
                )
        if self.problems:
            raise RuleSetError(self.problems)
        groups: dict[str, list[Tag]] = {}
        for tag in tags:
            if tag.group is not None:
                groups.setdefault(tag.group, []).append(tag)
        time_varying = frozenset(n for n, a in self.aggregates.items() if a.time_varying)
        return RuleSet(
            version=version,
            directory=str(self.directory),
            aggregates=self.aggregates,
            tags=tags,
            groups={k: tuple(v) for k, v in groups.items()},
            lifecycle=lifecycle,
            alerts=alerts,
            lists=self.lists,
            params=self.params,
            time_varying=time_varying,
            types=dict(self.names),
            declared_at={n: at for (section, n), at in self.seen.items() if section == "aggregate"},
            days=self.days,
        )


_FIELDS_HINT: Final = "fields are channel, type, ts, event_id, user_id or props.<name>"


def _listed(types: str | list[str]) -> list[str]:
    return [types] if isinstance(types, str) else types


def _negated(extract: Extractor | None, minus: frozenset[str]) -> Extractor | None:
    """The values of ``minus`` events, subtracted: folded in negated."""
    if extract is None:
        return None
    inner = extract

    def signed(event: BehaviourEvent) -> Any:
        value = inner(event)
        if event.type in minus and isinstance(value, int | float) and not isinstance(value, bool):
            return -value
        return value

    return signed


def _keyed_extractor(key_of: Extractor, extract: Extractor | None) -> Extractor:
    """(key, value) of an event for a keyed aggregate; None when either is missing."""

    def pair(event: BehaviourEvent) -> Any:
        key = value_key(key_of(event))
        if key is None:
            return None
        if extract is None:
            return key, None
        value = extract(event)
        return None if value is None else (key, value)

    return pair


def _event_filter(compiled: CompiledExpr) -> Filter:
    evaluate = compiled.evaluate

    def admits(event: BehaviourEvent) -> bool:
        fields = {
            "props": event.props,
            "channel": event.channel,
            "type": event.type,
            "ts": event.ts,
            "event_id": event.event_id,
            "user_id": event.user_id,
        }
        return evaluate(fields) is True

    return admits


def _reads_long(word: str) -> bool:
    """Whether a word is longer than ``MAX_WORD_CHARS`` as texts are searched for it
    (``normalised``: a compatibility character such as ﷺ spells out as 18): the bound on
    ``contains_any``'s cost is on the lengths it looks for. Only words NFKC changes can
    grow, so the others cost one quick check."""
    if word.isascii() or unicodedata.is_normalized("NFKC", word):
        return False
    return len(normalised(word)) > MAX_WORD_CHARS


def _said(items: list[str]) -> str:
    """Items as a sentence says them: ``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _identified(aggregate: Aggregate, spec: AggregateSpec) -> Aggregate:
    definition = json.dumps(
        spec.model_dump(exclude={"description"}, exclude_none=True), sort_keys=True
    )
    digest = hashlib.blake2b(definition.encode(), digest_size=3).hexdigest()
    return replace(aggregate, key=f"{aggregate.name}@{digest}")


def _problems_from_validation(error: ValidationError, source: SourceMap) -> Iterable[Problem]:
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        message = str(item["msg"]).removeprefix("Value error, ")
        hint = None
        if item["type"] == "extra_forbidden":
            where = source.key(loc)
            message = f"unknown key {loc[-1]!r}"
            hint = "check the spelling; docs/rules.md lists every key"
        else:
            where = source.at(loc)
            if item["type"] == "string_pattern_mismatch":
                hint = "names are lower_case_with_underscores"
        yield Problem(where, message, hint)


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory: its ``*.yaml`` and ``*.yml`` files, sorted. A name
    that is not a regular file (a device, a pipe, a link to nowhere) is one too, so that
    loading it says what it is rather than leaving it out unsaid."""
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir()
    )


def load_rules(directory: str | Path) -> RuleSet:
    """Load, validate and compile every rule file in ``directory``.

    Raises RuleSetError listing every problem with file:line:column and a hint.
    """
    root = Path(directory)
    at = Position(str(root), 1, 1)
    try:
        return _load_rules(root)
    except RuleSetError:
        raise
    except Exception as error:
        # The last line of defence: whatever a rule directory holds, loading it gives a
        # rule set or problems, never another exception (a live worker would stop).
        raise RuleSetError([Problem(at, f"cannot load these rules: {_failure(error)}")]) from None


def _failure(error: Exception) -> str:
    """An unexpected exception, said in one bounded line."""
    return f"{type(error).__name__}: {error}"[:200]


def _load_rules(root: Path) -> RuleSet:
    at = Position(str(root), 1, 1)
    if not root.is_dir():
        raise RuleSetError([Problem(at, "not a directory of rule files")])
    paths = rule_files(root)
    if not paths:
        raise RuleSetError([Problem(at, "no *.yaml rule files here")])
    if len(paths) > MAX_RULE_FILES:
        raise RuleSetError([Problem(at, f"more than {MAX_RULE_FILES} rule files")])
    problems: list[Problem] = []
    files: list[tuple[RuleFile, SourceMap]] = []
    budget = Budget()  # for the directory: all files together
    for path in paths:
        display = str(path)
        try:
            data, source = load_yaml(path, display, inside=root, budget=budget)
        except RuleSetError as error:
            problems.extend(error.problems)
            continue
        except Exception as error:  # a bug reached by this file: its problem, not a crash
            problems.append(Problem(Position(display, 1, 1), f"cannot load: {_failure(error)}"))
            continue
        if data is not None and not isinstance(data, dict):
            problems.append(Problem(source.at(()), "a rule file is a mapping of sections"))
            continue
        try:
            files.append((RuleFile.model_validate(data or {}), source))
        except ValidationError as error:
            problems.extend(_problems_from_validation(error, source))
    compiler = _Compiler(files, root)
    if problems:
        raise RuleSetError(problems)
    return compiler.compile(rules_version(root))


def rules_version(directory: Path) -> str:
    """The version of a rule directory: a hash of its rule and list files' names and
    contents (a new sensitive word is a new rule set). Cheap: no parsing.

    Every file a rule set can read is in it: list files are .txt files inside the
    directory. Only regular files inside it are read, each up to its size limit (a file
    over it is refused by ``load_rules`` anyway): a device or a pipe named like a rule or
    list file neither blocks the poll nor is read forever.
    """
    digest = hashlib.sha256()
    lists = sorted(directory.rglob("*" + LIST_SUFFIX))
    for path, limit in [
        *((p, MAX_FILE_BYTES) for p in rule_files(directory)),
        *((p, MAX_LIST_BYTES) for p in lists),
    ]:
        try:
            content = read_bounded(path, limit, inside=directory)
        except OSError as error:
            content = str(error).encode()  # refused or unreadable: its reason is its content
        digest.update(path.name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]

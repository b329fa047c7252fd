"""Rule tests in a format rule authors write: given events, expect tags / stage / alerts.

A test file (``rules/tests/*.yaml``) holds a list of tests::

    tests:
      - name: a second purchase makes a buyer active
        events:
          - {type: purchase, at: +0d, props: {amount: 100}}
          - {type: purchase, at: +3d, props: {amount: 80}}
        until: +10d              # optional: let time pass (timers fire) up to here
        expect:
          stage: active
          has_tags: [source_app]
          alerts: []             # the alerts raised, in order, by name
          details: {sensitive_message: {words: [骗子]}}   # the last one's details

Times are offsets from ``start`` (default 2026-01-01T00:00:00Z) or ISO-8601 timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taggers.display import format_value
from taggers.durations import DurationError, parse_duration
from taggers.engine import Engine
from taggers.events import EVENT_TYPES, BehaviourEvent, EventError, to_epoch_ms
from taggers.expr import Type
from taggers.model_problems import did_you_mean, validation_problems
from taggers.outputs import Alert, Output, Transition
from taggers.ruleset import RuleSet
from taggers.yaml_source import Path_, Position, Problem, RuleSetError, SourceMap, load_yaml

DEFAULT_START = "2026-01-01T00:00:00Z"
TESTS_DOCS: Final = "docs/rules.md (Testing a rule)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TestEvent(_Strict):
    """One event of a test; ``at`` is an offset like +3d or an ISO-8601 timestamp."""

    type: str
    at: str = "+0d"
    channel: str | None = "app"
    props: dict[str, Any] = Field(default_factory=dict)
    user: str | None = None


class Expect(_Strict):
    """What must hold at the end of a test. Everything is optional."""

    stage: str | None = None
    tags: list[str] | None = Field(default=None, description="exactly these tags")
    has_tags: list[str] = Field(default_factory=list)
    lacks_tags: list[str] = Field(default_factory=list)
    alerts: list[str] | None = Field(default=None, description="exactly these, in order")
    has_alerts: list[str] = Field(default_factory=list)
    lacks_alerts: list[str] = Field(default_factory=list)
    transitions: list[str] | None = Field(default=None, description="e.g. ['new->active']")
    values: dict[str, Any] = Field(default_factory=dict)
    details: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="by alert name: the last such alert has these details (those named)",
    )


class RuleTest(_Strict):
    """One test: events for one user, optionally time passing, and expectations."""

    name: str
    user: str = "u1"
    start: str = DEFAULT_START
    events: list[TestEvent]
    until: str | None = None
    expect: Expect


class TestFile(_Strict):
    """A file of rule tests."""

    tests: list[RuleTest]


@dataclass(frozen=True, slots=True)
class TestResult:
    """The outcome of one test: ``failures`` are human-readable expected/actual lines."""

    name: str
    where: Position
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def _time(text: str, start: int) -> int:
    if text.startswith(("+", "-")):
        offset = parse_duration(text[1:]) if text[1:] not in ("0", "0d") else 0
        return start + offset if text[0] == "+" else start - offset
    return to_epoch_ms(text)


def _compare(label: str, expected: Any, actual: Any) -> list[str]:
    if expected == actual:
        return []
    return [f"{label}:\n    expected: {expected!r}\n    actual:   {actual!r}"]


def _check(expect: Expect, engine: Engine, profile: Any, outputs: list[Output]) -> list[str]:
    return [
        *_check_tags(expect, profile),
        *_check_outputs(expect, outputs),
        *_check_values(expect, engine.aggregate_values(profile), engine.rules.types),
    ]


def _check_tags(expect: Expect, profile: Any) -> list[str]:
    failures: list[str] = []
    tags = sorted(profile.tags)
    if expect.stage is not None:
        failures += _compare("stage", expect.stage, profile.stage)
    if expect.tags is not None:
        failures += _compare("tags", sorted(expect.tags), tags)
    missing = [t for t in expect.has_tags if t not in profile.tags]
    if missing:
        failures.append(f"missing tags {missing}; the user has {tags}")
    extra = [t for t in expect.lacks_tags if t in profile.tags]
    if extra:
        failures.append(f"unexpected tags {extra}; the user has {tags}")
    return failures


def _check_outputs(expect: Expect, outputs: list[Output]) -> list[str]:
    failures: list[str] = []
    alerts = [o.name for o in outputs if isinstance(o, Alert)]
    if expect.alerts is not None:
        failures += _compare("alerts", expect.alerts, alerts)
    missing = [a for a in expect.has_alerts if a not in alerts]
    if missing:
        failures.append(f"alerts not raised {missing}; raised {alerts}")
    extra = [a for a in expect.lacks_alerts if a in alerts]
    if extra:
        failures.append(f"alerts raised but not expected {extra}")
    for name, expected in expect.details.items():
        raised = [o for o in outputs if isinstance(o, Alert) and o.name == name]
        if not raised:
            failures.append(f"details of {name}: the alert was not raised")
            continue
        shown = {key: raised[-1].details.get(key) for key in expected}
        failures += _compare(f"details of {name}", expected, shown)
    if expect.transitions is not None:
        moves = [
            f"{o.from_stage}->{o.to_stage}"
            for o in outputs
            if isinstance(o, Transition) and o.from_stage is not None
        ]
        failures += _compare("transitions", expect.transitions, moves)
    return failures


def _shown(value: Any, type_: Type | None) -> str:
    """A value as a test writes it, and also as people read it when that differs
    (``492642765 (5d 16h)``); null and booleans as YAML writes them."""
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, bool):
        return format_value(value)
    readable = format_value(value, type_)
    return repr(value) if readable == repr(value) else f"{value!r} ({readable})"


def _check_values(expect: Expect, values: dict[str, Any], types: Mapping[str, Type]) -> list[str]:
    failures: list[str] = []
    for name, expected in expect.values.items():
        if name not in values:
            failures.append(f"values: no aggregate named {name!r}")
            continue
        actual = values[name]
        if isinstance(expected, float) and isinstance(actual, int | float):
            if abs(actual - expected) <= 1e-6 * max(1.0, abs(expected)):
                continue
        elif expected == actual:
            continue
        type_ = types.get(name)
        failures.append(
            f"values.{name}:\n    expected: {_shown(expected, type_)}\n"
            f"    actual:   {_shown(actual, type_)}"
        )
    return failures


class BadTestInputError(Exception):
    """A time or an event of a test that cannot be read; ``path`` is where, in the test."""

    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _reason(error: Exception) -> str:
    """Why a time or an event cannot be read, in words (a pydantic error's first message,
    never its URL)."""
    if isinstance(error, ValidationError):
        errors = error.errors(include_url=False)
        text = str(errors[0]["msg"]) if errors else "not a valid event"
    else:
        text = str(error).split("\n", 1)[0]
    return text.removeprefix("Value error, ").replace(": Field required", ": missing")


def events_of(test: RuleTest) -> tuple[list[BehaviourEvent], int | None]:
    """The events of a test and the time it runs until; raises BadTestInputError."""
    try:
        start = to_epoch_ms(test.start)
    except (ValueError, EventError) as error:
        raise BadTestInputError(("start",), f"start: {_reason(error)}") from None
    events: list[BehaviourEvent] = []
    for i, event in enumerate(test.events):
        try:
            at = _time(event.at, start)
        except (ValueError, DurationError, EventError) as error:
            raise BadTestInputError(("events", i, "at"), f"at: {_reason(error)}") from None
        try:
            events.append(
                BehaviourEvent.model_validate(
                    {
                        "event_id": f"{test.user}-{i}",
                        "user_id": event.user or test.user,
                        "type": event.type,
                        "ts": at,
                        "channel": event.channel,
                        "props": event.props,
                    }
                )
            )
        except (ValueError, EventError) as error:
            raise BadTestInputError(("events", i), _reason(error)) from None
    try:
        until = None if test.until is None else _time(test.until, start)
    except (ValueError, DurationError, EventError) as error:
        raise BadTestInputError(("until",), f"until: {_reason(error)}") from None
    return events, until


def run_test(test: RuleTest, engine: Engine) -> list[str]:
    """Run one test on a fresh profile; return its failures (empty when it passes)."""
    try:
        events, until = events_of(test)
    except BadTestInputError as error:
        return [f"bad test input: {error.message}"]
    profile = engine.new_profile(test.user)
    outputs: list[Output] = []
    for event in events:
        outputs.extend(engine.apply(profile, event))
    if until is not None:
        outputs.extend(engine.advance(profile, until))
        profile.clock = max(profile.clock, until)
    return _check(test.expect, engine, profile, outputs)


def load_tests(path: Path) -> tuple[TestFile, SourceMap]:
    """Load one test file; raises RuleSetError with file:line:column on bad files."""
    data, source = load_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise RuleSetError([Problem(source.at(()), "a test file is a mapping: tests: [...]")])
    try:
        return TestFile.model_validate(data or {}), source
    except ValidationError as error:
        raise RuleSetError(validation_problems(error, source, TestFile, TESTS_DOCS)) from None


class _Names:
    """Checks the names one file's tests write against the rule set, with did-you-mean."""

    def __init__(self, rules: RuleSet, source: SourceMap) -> None:
        self.rules = rules
        self.source = source
        self.problems: list[Problem] = []
        self.stages = list(rules.lifecycle.stages) if rules.lifecycle else []
        self.aggregates = [n for n in rules.aggregates if not n.startswith("_")]

    def unknown(
        self, name: str, what: str, known: Iterable[str], where: Path_, key: bool = False
    ) -> None:
        """A problem at the name (a key of a mapping when ``key``), with the name meant."""
        names = sorted(known)
        listed = f"{what}s are: {', '.join(names[:12])}" if names else f"the rules have no {what}s"
        hint = did_you_mean(name, names) or listed
        at = self.source.key(where) if key else self.source.at(where)
        self.problems.append(Problem(at, f"unknown {what} {name!r}", hint))

    def is_tag(self, name: str) -> bool:
        """Whether the rules can give the tag ``name`` (a family's ``<name>_<value>``)."""
        for tag in self.rules.tags:
            if tag.value is None and tag.name == name:
                return True
            value = name.removeprefix(tag.name + "_")
            family = tag.value is not None and value != name
            if family and (tag.values is None or value in tag.values):
                return True
        return False

    def tags(self, names: list[str] | None, where: Path_) -> None:
        shown = [t.name if t.value is None else f"{t.name}_<value>" for t in self.rules.tags]
        for i, name in enumerate(names or []):
            if not self.is_tag(name):
                self.unknown(name, "tag", shown, (*where, i))

    def alerts(self, names: Iterable[str] | None, where: Path_, keyed: bool = False) -> None:
        for i, name in enumerate(names or []):
            if name not in self.rules.alerts:
                at = (*where, name if keyed else i)
                self.unknown(name, "alert", self.rules.alerts, at, key=keyed)

    def stage(self, name: str, where: Path_) -> None:
        if name not in self.stages:
            self.unknown(name, "stage", self.stages, where)

    def expect(self, expect: Expect, where: Path_) -> None:
        if expect.stage is not None:
            self.stage(expect.stage, (*where, "stage"))
        for key in ("tags", "has_tags", "lacks_tags"):
            self.tags(getattr(expect, key), (*where, key))
        for key in ("alerts", "has_alerts", "lacks_alerts"):
            self.alerts(getattr(expect, key), (*where, key))
        self.alerts(expect.details, (*where, "details"), keyed=True)
        for name in expect.values:
            if name not in self.aggregates:
                at = (*where, "values", name)
                self.unknown(name, "aggregate", self.aggregates, at, key=True)
        for i, move in enumerate(expect.transitions or []):
            at = (*where, "transitions", i)
            stages = move.split("->")
            if len(stages) != 2:
                message = f"{move!r} is not a stage change"
                self.problems.append(Problem(self.source.at(at), message, "write from->to"))
                continue
            for stage in stages:
                self.stage(stage.strip(), at)

    def events(self, test: RuleTest, where: Path_) -> None:
        unknown = [(i, e.type) for i, e in enumerate(test.events) if e.type not in EVENT_TYPES]
        for i, name in unknown:
            self.unknown(name, "event type", EVENT_TYPES, (*where, "events", i, "type"))
        if unknown:
            return  # the events are not built: an unknown type is its own problem
        try:
            events_of(test)
        except BadTestInputError as error:
            self.problems.append(Problem(self.source.at((*where, *error.path)), error.message))


def file_problems(tests: TestFile, source: SourceMap, rules: RuleSet) -> list[Problem]:
    """Every name, time and event of a file's tests that the rules cannot mean: a test of
    an alert that does not exist would pass (``lacks_alerts: [welcom]``) for no reason."""
    names = _Names(rules, source)
    for index, test in enumerate(tests.tests):
        names.events(test, ("tests", index))
        names.expect(test.expect, ("tests", index, "expect"))
    return names.problems


def run_tests(rules: RuleSet, directory: Path) -> list[TestResult]:
    """Run every test in ``directory/*.yaml`` against the rule set.

    Raises RuleSetError with every problem of every file (file:line:column, a hint)
    before any test runs."""
    engine = Engine(rules)
    loaded: list[tuple[TestFile, SourceMap]] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            tests, source = load_tests(path)
        except RuleSetError as error:
            problems.extend(error.problems)
            continue
        problems.extend(file_problems(tests, source, rules))
        loaded.append((tests, source))
    if problems:
        raise RuleSetError(problems)
    results: list[TestResult] = []
    for tests, source in loaded:
        for index, test in enumerate(tests.tests):
            where = source.at(("tests", index))
            results.append(TestResult(test.name, where, tuple(run_test(test, engine))))
    return results

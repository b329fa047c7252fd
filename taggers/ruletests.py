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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taggers.display import format_value
from taggers.durations import DurationError, parse_duration
from taggers.engine import Engine
from taggers.events import BehaviourEvent, EventError, to_epoch_ms
from taggers.expr import Type
from taggers.outputs import Alert, Output, Transition
from taggers.ruleset import RuleSet
from taggers.yaml_source import Position, Problem, RuleSetError, SourceMap, load_yaml

DEFAULT_START = "2026-01-01T00:00:00Z"


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


def run_test(test: RuleTest, engine: Engine) -> list[str]:
    """Run one test on a fresh profile; return its failures (empty when it passes)."""
    try:
        start = to_epoch_ms(test.start)
        events = [
            BehaviourEvent.model_validate(
                {
                    "event_id": f"{test.user}-{i}",
                    "user_id": event.user or test.user,
                    "type": event.type,
                    "ts": _time(event.at, start),
                    "channel": event.channel,
                    "props": event.props,
                }
            )
            for i, event in enumerate(test.events)
        ]
        until = None if test.until is None else _time(test.until, start)
    except (ValueError, DurationError, EventError, ValidationError) as error:
        return [f"bad test input: {error}"]
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
    try:
        return TestFile.model_validate(data or {}), source
    except ValidationError as error:
        problems = [
            Problem(source.at(tuple(item["loc"])), str(item["msg"]))
            for item in error.errors(include_url=False)
        ]
        raise RuleSetError(problems) from None


def run_tests(rules: RuleSet, directory: Path) -> list[TestResult]:
    """Run every test in ``directory/*.yaml`` against the rule set."""
    engine = Engine(rules)
    results: list[TestResult] = []
    for path in sorted(directory.glob("*.y*ml")):
        tests, source = load_tests(path)
        for index, test in enumerate(tests.tests):
            where = source.at(("tests", index))
            results.append(TestResult(test.name, where, tuple(run_test(test, engine))))
    return results

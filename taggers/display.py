"""How outputs and values read: for people (``format_value``: ``5d 16h``, ``845.78``,
ISO-8601 times in a time zone, ``null``) and for machines (``json_value``: the JSON form
that outputs, profile views and ``tagger replay --json`` carry), each by the value's type.

Doubles are taken to be money (spend, order values) and rounded to cents in both forms;
durations are whole milliseconds in JSON; timestamps are ISO-8601 strings, UTC in JSON
(like every output's ``at``) and in the shown zone for people.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any, Final

from taggers.durations import format_duration
from taggers.events import format_ts, to_epoch_ms
from taggers.expr import DURATION, TIMESTAMP, Type
from taggers.outputs import OUTPUT_KINDS, OutputKind, kind_named

if TYPE_CHECKING:
    from taggers.ruleset import RuleSet

MONEY_DECIMALS: Final = 2
"""Doubles are rounded to cents wherever they are shown or sent."""

# What the engine adds to an alert's details besides the values its rule names.
EXTRA_DETAIL_TYPES: Final[Mapping[str, Type]] = {"due": TIMESTAMP}


def display_zone(rules: RuleSet) -> tzinfo:
    """The time zone people read a rule set's times in: its ``timezone:`` (UTC unless a
    rule file says otherwise). The one place the rule set's zone enters what is shown."""
    return rules.days.zone


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rounded(value: float) -> float:
    """A double to cents (never ``-0.0``); infinities and NaN as they are."""
    if not math.isfinite(value):
        return value
    return round(value, MONEY_DECIMALS) + 0.0


def _shown_time(value: Any, tz: tzinfo) -> str:
    """A timestamp (epoch ms, or the ISO form JSON carries) as ISO-8601 in ``tz``."""
    try:
        ms = int(value) if _is_number(value) else to_epoch_ms(value)
        return format_ts(ms, tz)
    except (ValueError, OverflowError):  # not a time after all: show what it is
        return str(value)


def format_value(value: Any, type_: Type | None = None, tz: tzinfo = UTC) -> str:
    """A value as people read it, by its type: a duration as ``5d 16h``, a timestamp as
    ISO-8601 in ``tz``, a double to cents (``845.78``), null as ``null``, booleans as
    ``true``/``false``, lists and maps item by item. Also takes a value's JSON form."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_ == TIMESTAMP and (_is_number(value) or isinstance(value, str)):
        return _shown_time(value, tz)
    if type_ == DURATION and _is_number(value):
        return format_duration(int(value))
    elem = type_.elem if type_ is not None else None
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(item, elem, tz) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{key}: {format_value(item, elem, tz)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{_rounded(value):.{MONEY_DECIMALS}f}".rstrip("0").rstrip(".")
    return str(value)


def format_values(values: Mapping[str, Any], types: Mapping[str, Type], tz: tzinfo = UTC) -> str:
    """``name=value, ...`` with each value formatted by its type."""
    return ", ".join(f"{k}={format_value(v, types.get(k), tz)}" for k, v in values.items())


def json_value(value: Any, type_: Type | None = None) -> Any:
    """A value's JSON form, by its type: a timestamp as an ISO-8601 UTC string, a duration
    as whole milliseconds, a double rounded to cents, lists and maps item by item; the rest
    as it is. Applying it to a JSON form gives that form back."""
    if type_ == TIMESTAMP and _is_number(value):
        try:
            return format_ts(int(value))
        except OverflowError:  # beyond what a date can say: the number
            return value
    if type_ == DURATION and isinstance(value, float) and math.isfinite(value):
        return round(value)  # an average gap: whole milliseconds like every duration
    if isinstance(value, float):
        return _rounded(value)
    elem = type_.elem if type_ is not None else None
    if isinstance(value, list | tuple):
        return [json_value(item, elem) for item in value]
    if isinstance(value, dict):
        return {key: json_value(item, elem) for key, item in value.items()}
    return value


def json_values(values: Mapping[str, Any], types: Mapping[str, Type]) -> dict[str, Any]:
    """Each value's JSON form, by the type ``types`` gives its name."""
    return {name: json_value(value, types.get(name)) for name, value in values.items()}


def describe_output(record: Mapping[str, Any], types: Mapping[str, Type], tz: tzinfo = UTC) -> str:
    """One line for an output in its JSON form (``output_to_dict``, or read off a topic):
    when, who, what (an alert with its details) and because of which values."""
    what = kind_named(record["kind"]).describe(record)
    details = record.get("details")
    if details:
        what += "  with " + format_values(details, {**EXTRA_DETAIL_TYPES, **types}, tz)
    values = format_values(record["reason"]["values"], types, tz)
    because = f"  because {values}" if values else ""
    return f"{format_value(record['at'], TIMESTAMP, tz)}  {_who(record)}  {what}{because}"


def _who(record: Mapping[str, Any]) -> str:
    """The id the event came under, and the person's when it is another (a linked id)."""
    user, person = record["user_id"], record.get("person_id", record["user_id"])
    return user if person == user else f"{user} (person {person})"


@dataclass
class OutputTally:
    """Outputs counted by kind, and by their kind's ``tally`` key (alerts by name)."""

    kinds: Counter[str] = field(default_factory=Counter)
    split: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one output in its JSON form."""
        kind = kind_named(record["kind"])
        self.kinds[kind.name] += 1
        if kind.tally is not None:
            self.split.setdefault(kind.name, Counter())[str(record[kind.tally])] += 1

    def by(self, kind: OutputKind[Any]) -> list[tuple[str, int]]:
        """A kind's counts by its ``tally`` key, sorted by value (none if it has no key)."""
        return sorted(self.split.get(kind.name, Counter()).items())

    def line(self) -> str:
        """Every kind's count: ``tag changes 3  transitions 1  alerts 2 (vip=2)`` (a rare
        kind, such as identity merges, only when there are some)."""
        return "  ".join(
            self._kind(kind)
            for kind in OUTPUT_KINDS
            if kind.summary_when_none or self.kinds[kind.name]
        )

    def _kind(self, kind: OutputKind[Any]) -> str:
        text = f"{kind.plural} {self.kinds[kind.name]}"
        if kind.tally is None:
            return text
        split = ", ".join(f"{value}={count}" for value, count in self.by(kind))
        return f"{text} ({split or '-'})"

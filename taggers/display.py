"""How outputs and values read for people: one line per output, 60d rather than 5184000000."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taggers.durations import format_duration
from taggers.events import format_ts
from taggers.expr import DURATION, TIMESTAMP, Type
from taggers.outputs import OUTPUT_KINDS, OutputKind, kind_named


def format_value(value: Any, type_: Type | None = None) -> str:
    """A value as people read it: durations as 60d, timestamps as ISO-8601, 2 decimals."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if type_ == DURATION:
            return format_duration(int(value))
        if type_ == TIMESTAMP:
            return format_ts(int(value))
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def format_values(values: Mapping[str, Any], types: Mapping[str, Type]) -> str:
    """``name=value, ...`` with each value formatted by its type."""
    return ", ".join(f"{k}={format_value(v, types.get(k))}" for k, v in values.items())


def describe_output(record: Mapping[str, Any], types: Mapping[str, Type]) -> str:
    """One line for an output in its JSON form (``output_to_dict``, or read off a topic)."""
    what = kind_named(record["kind"]).describe(record)
    values = format_values(record["reason"]["values"], types)
    because = f"  because {values}" if values else ""
    return f"{record['at']}  {record['user_id']}  {what}{because}"


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
        """Every kind's count: ``tag changes 3  transitions 1  alerts 2 (vip=2)``."""
        return "  ".join(self._kind(kind) for kind in OUTPUT_KINDS)

    def _kind(self, kind: OutputKind[Any]) -> str:
        text = f"{kind.plural} {self.kinds[kind.name]}"
        if kind.tally is None:
            return text
        split = ", ".join(f"{value}={count}" for value, count in self.by(kind))
        return f"{text} ({split or '-'})"

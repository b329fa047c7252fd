"""How outputs and values read for people: one line per output, 60d rather than 5184000000."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taggers.durations import format_duration
from taggers.events import format_ts
from taggers.expr import DURATION, TIMESTAMP, Type


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
    label = f" ({record['display']})" if record.get("display") else ""
    if record["kind"] == "tag_change":
        sign = "+" if record["op"] == "add" else "-"
        what = f"tag {sign}{record['tag']}{label}"
    elif record["kind"] == "transition":
        what = f"stage {record['from'] or '-'} -> {record['to']}"
    else:
        what = f"ALERT {record['name']}{label} [{record['severity']}]"
    values = format_values(record["reason"]["values"], types)
    because = f"  because {values}" if values else ""
    return f"{record['at']}  {record['user_id']}  {what}{because}"

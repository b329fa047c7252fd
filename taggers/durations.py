"""Durations as rule authors write them: ``90d``, ``12h``, ``30m``, ``45s``, ``1500ms``."""

from __future__ import annotations

import re

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

UNIT_MS: dict[str, int] = {
    "ms": 1,
    "s": SECOND_MS,
    "m": MINUTE_MS,
    "h": HOUR_MS,
    "d": DAY_MS,
    "w": 7 * DAY_MS,
}

MAX_DURATION_MS = 36_500 * DAY_MS
"""The longest duration a rule may write (about 100 years): beyond it a number is a
mistake, and time arithmetic stays far inside the range of a timestamp."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


class DurationError(ValueError):
    """A duration string that does not parse, with a hint about the accepted form."""


def parse_duration(text: str) -> int:
    """Return the duration in milliseconds, e.g. ``parse_duration("90d")``.

    Raises DurationError for anything else (negative, zero, unknown unit, missing unit).
    """
    match = _DURATION.match(text)
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
    if match is None:
        raise DurationError(
            f"bad duration {shown}: write a number and a unit, e.g. 90d, 12h, 30m, 45s, 1500ms"
        )
    value = float(match.group(1)) * UNIT_MS[match.group(2)]
    if value <= 0:
        raise DurationError(f"bad duration {shown}: must be greater than zero")
    if value > MAX_DURATION_MS:
        raise DurationError(f"bad duration {shown}: at most 36500d")
    return int(value)


def format_duration(ms: int) -> str:
    """A duration as people read it, in its two largest units, the rest left off:
    ``5d 16h`` (from a day), ``16h 50m`` (from an hour), ``50m 42s``, ``42.765s``, ``765ms``;
    a whole number of a unit stays short (``90d``, ``12h``)."""
    if ms < 0:
        return "-" + format_duration(-ms)
    if ms < SECOND_MS:
        return f"{ms}ms"
    if ms < MINUTE_MS:
        return f"{ms / SECOND_MS:.3f}".rstrip("0").rstrip(".") + "s"
    big, small = ("d", "h") if ms >= DAY_MS else ("h", "m") if ms >= HOUR_MS else ("m", "s")
    whole, rest = divmod(ms, UNIT_MS[big])
    part = rest // UNIT_MS[small]
    return f"{whole}{big} {part}{small}" if part else f"{whole}{big}"

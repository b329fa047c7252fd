"""What an event's values mean: timestamps as epoch ms, numeric props, ids, and their bounds.

Plain functions without pydantic, shared by the event model (``taggers.events``) and the
fast path of decoding (``taggers.fast_decode``): both read a value through the very same
code, so that they cannot read it differently.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Final

MAX_AMOUNT: Final = 10**12
"""The largest magnitude of a typed amount or points value: sums of them stay finite."""
# Integers the profile store can write exactly (orjson's range: int64 and uint64).
MIN_INTEGER: Final = -(2**63)
MAX_INTEGER: Final = 2**64 - 1
MAX_ID_LENGTH: Final = 128
MAX_CHANNEL_LENGTH: Final = 64
MAX_GROUP_ID_LENGTH: Final = 128
MAX_TEXT_LENGTH: Final = 10_000
"""The longest ``text`` of a ``message`` event, in characters."""

# Epoch-ms sanity range: catches seconds sent where milliseconds are expected.
MIN_TS_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)  # made once: a timedelta takes long to make

# What an id must not contain: braces (a user id is the Redis Cluster hash tag of its keys,
# which Redis takes from the first { to the next }) and control characters.
ID_PATTERN: Final = r"^[^{}\x00-\x1f\x7f]*$"
TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"


def to_epoch_ms(value: object) -> int:
    """Parse an ISO-8601 timestamp with a time zone, or epoch milliseconds, into epoch ms.

    Raises ValueError (only) for anything else, infinities and NaN included."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO-8601 string with a time zone or epoch milliseconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a time: send epoch milliseconds or ISO-8601")
    if isinstance(value, (int, float)):  # a tuple: faster than the union
        ms = int(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"not an ISO-8601 timestamp: {value[:40]!r} (e.g. 2026-05-01T10:00:00+08:00)"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"{value[:40]!r} has no time zone: add Z or an offset like +08:00")
        try:
            # Exact (a float of seconds times 1000 loses a millisecond now and then).
            ms = (parsed - EPOCH) // _MILLISECOND
        except (OverflowError, ValueError):  # a date at the edge of what datetime holds
            raise ValueError(f"{value[:40]!r} is outside 2000-01-01..2100-01-01") from None
    else:
        raise ValueError("must be an ISO-8601 string with a time zone or epoch milliseconds")
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        hint = (
            " (looks like seconds: send milliseconds)"
            if MIN_TS_MS // 1000 <= ms < MAX_TS_MS // 1000
            else ""
        )
        shown = ms if abs(ms) < 10**20 else f"{str(ms)[:20]}..."
        raise ValueError(f"{shown} is outside 2000-01-01..2100-01-01{hint}")
    return ms


NUMERIC: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
"""Numeric text, as a numeric prop may be sent (``"1500.50"``)."""


def to_number(value: object) -> int | float:
    """A numeric prop as the number it means: a JSON number as it is, a numeric string
    (``"1500.50"``, ``"500"``) parsed. Booleans, NaN, infinities, other strings and
    magnitudes over ``MAX_AMOUNT`` raise ValueError."""
    if type(value) is float and -MAX_AMOUNT <= value <= MAX_AMOUNT:  # the usual case
        return value
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40 or not NUMERIC.fullmatch(text):
            raise ValueError(f"must be a number, not the text {value[:40]!r}")
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
    if not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {value}")
    if abs(value) > MAX_AMOUNT:
        raise ValueError(f"must be at most {MAX_AMOUNT:,} in magnitude")
    return value

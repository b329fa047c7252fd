"""The rule set's days: local calendar days in its time zone, as numbered days.

A day is numbered as its local date's distance from 1970-01-01, so that in UTC day ``n``
is ``ts // DAY_MS`` as before. ``day_of`` and ``start_of`` are exact for every zone,
daylight saving included: a day that is 23 or 25 hours long starts and ends where the
zone's midnight is (or, when midnight is skipped, at the day's first instant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from taggers.durations import DAY_MS

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_MAX_STARTS: Final = 4096  # about 11 years of days remembered; then start over
_SEARCH_MS: Final = 2 * DAY_MS  # midnight is within a day of UTC midnight in every zone
DEFAULT_ZONE: Final = "UTC"


class UnknownZoneError(ValueError):
    """A time zone name that is not in the zone database, with a close match if any."""


def load_zone(name: str) -> ZoneInfo:
    """The zone of an IANA name (``Asia/Shanghai``); raises UnknownZoneError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownZoneError(name) from None


def zone_names() -> frozenset[str]:
    """Every zone name the database knows (for hints)."""
    return frozenset(available_timezones())


def offset_ms(ts: int, zone: tzinfo) -> int:
    """The zone's offset from UTC at the instant ``ts`` (epoch ms), in ms."""
    at = _EPOCH + timedelta(milliseconds=ts)
    offset = zone.utcoffset(at.astimezone(zone))
    return 0 if offset is None else offset // _MS


def local_time(ts: int, zone: tzinfo) -> datetime:
    """The instant ``ts`` (epoch ms) as a local date and time in ``zone``."""
    return (_EPOCH + timedelta(milliseconds=ts)).astimezone(zone)


class LocalDays:
    """Numbered local days of one zone; ``day_of`` is on the engine's hot path.

    The last day looked up is kept (its first and next day's first instant), so that
    the usual case, many times of the same day, costs two comparisons. A zone with one
    offset for all time (UTC, ``Etc/GMT-8``) needs no lookups at all.
    """

    __slots__ = ("_last", "_starts", "fixed", "name", "zone")

    def __init__(self, zone: tzinfo, name: str) -> None:
        self.zone = zone
        self.name = name
        self.fixed = _fixed_offset(zone)
        self._last = (0, 0, 0)  # first instant, next day's first instant, day
        self._starts: dict[int, int] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalDays) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"LocalDays({self.name!r})"

    def day_of(self, ts: int) -> int:
        """The local day of the instant ``ts`` (epoch ms)."""
        if self.fixed is not None:
            return (ts + self.fixed) // DAY_MS
        low, high, day = self._last
        if low <= ts < high:
            return day
        day = (ts + offset_ms(ts, self.zone)) // DAY_MS
        self._last = (self.start_of(day), self.start_of(day + 1), day)
        return day

    def start_of(self, day: int) -> int:
        """The first instant (epoch ms) of local day ``day``: its midnight, or when the
        zone skips midnight, the first instant after the gap."""
        if self.fixed is not None:
            return day * DAY_MS - self.fixed
        found = self._starts.get(day)
        if found is None:
            found = self._first_instant(day)
            if len(self._starts) >= _MAX_STARTS:
                self._starts.clear()
            self._starts[day] = found
        return found

    def _first_instant(self, day: int) -> int:
        # The smallest instant whose local day is ``day`` or later: local days never
        # go back as time goes on, so a bisection finds it.
        low, high = day * DAY_MS - _SEARCH_MS, day * DAY_MS + _SEARCH_MS
        zone = self.zone
        while high - low > 1:
            middle = (low + high) // 2
            if (middle + offset_ms(middle, zone)) // DAY_MS >= day:
                high = middle
            else:
                low = middle
        return high


def _fixed_offset(zone: tzinfo) -> int | None:
    """The offset in ms of a zone that has one by definition (UTC, ``Etc/GMT-8``), else
    None: any other zone's offsets are looked up, as its rules have changed or may."""
    key = getattr(zone, "key", None)
    if zone is UTC or key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT"):
        return 0
    if isinstance(key, str) and key.startswith("Etc/GMT"):
        return offset_ms(0, zone)
    return None

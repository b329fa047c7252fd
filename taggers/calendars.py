"""Calendar triggers: the local dates and times an alert's ``calendar:`` fires at.

Three sources of dates: a dated list (``dates:``, lines ``YYYY-MM-DD name``), fixed
instants (``at:``, timestamp params or literals) and a date that comes back every year
(``yearly:``, an aggregate holding ``YYYY-MM-DD``, ``MM-DD`` or a timestamp: a birthday, a
membership anniversary). Each date becomes one occurrence: its due instant (the date
shifted by ``after`` minus ``before``, at the local ``time`` of day, in the rule set's
time zone) and the ``date`` (and ``name``) its alert's details carry.

February 29 comes back on February 28 in years that have no February 29.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from taggers.durations import DAY_MS, MINUTE_MS
from taggers.localdays import LocalDays, local_time

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_DATED_LINE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\s+(\S.*)$")
_TIME_OF_DAY: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_YEARLY_TEXT: Final = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")
_MIN_YEAR: Final = 1971
_MAX_YEAR: Final = 2200
_MAX_REMEMBERED: Final = 4096  # yearly occurrences a calendar keeps; then it starts over


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One date of a calendar: when it fires, and the details it gives."""

    due: int
    date: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Calendar:
    """A compiled ``calendar:``: fixed occurrences (``dates``/``at``, sorted by due time),
    or the aggregate whose date comes back every year (``yearly``), with the shift
    (``after`` - ``before``, in ms) and the local time of day (ms after midnight)."""

    fixed: tuple[Occurrence, ...] = ()
    yearly: str | None = None
    shift_ms: int = 0
    time_ms: int = 0
    # Made once, not at each deadline a profile's next date is looked for: the due times
    # of ``fixed`` (searched), and the yearly occurrences already made, by (local days,
    # year, month, day) (``on`` is a pure function of them).
    dues: tuple[int, ...] = field(init=False, repr=False, compare=False)
    made: dict[tuple[LocalDays, int, int, int], Occurrence] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "dues", tuple(o.due for o in self.fixed))
        object.__setattr__(self, "made", {})

    def next_after(self, floor: int, yearly_value: Any, days: LocalDays) -> Occurrence | None:
        """The first occurrence due strictly after ``floor`` (epoch ms), or None."""
        if self.yearly is None:
            at = bisect.bisect_right(self.dues, floor)
            return self.fixed[at] if at < len(self.fixed) else None
        found = month_day(yearly_value, days)
        if found is None:
            return None
        month, day = found
        # The occurrence of a year may fall in the year before or after (``before: 30d``
        # on January 10th): look from the year before the floor's.
        start = local_time(max(floor, 0), days.zone).year - 1
        made = self.made
        for year in range(max(start, _MIN_YEAR), _MAX_YEAR):
            key = (days, year, month, day)
            occurrence = made.get(key)
            if occurrence is None:
                occurrence = self.on(date(year, month, _day_in(year, month, day)), days)
                if len(made) >= _MAX_REMEMBERED:
                    made.clear()
                made[key] = occurrence
            if occurrence.due > floor:
                return occurrence
        return None

    def on(self, when: date, days: LocalDays, name: str | None = None) -> Occurrence:
        """The occurrence of a local date: shifted, at the time of day, in the zone."""
        shift_days, rest = divmod(self.shift_ms, DAY_MS)
        local = datetime.combine(when + timedelta(days=shift_days), datetime.min.time())
        at = (local + timedelta(milliseconds=self.time_ms)).replace(tzinfo=days.zone)
        return Occurrence((at - _EPOCH) // _MS + rest, when.isoformat(), name)

    def at_instant(self, ts: int, days: LocalDays) -> Occurrence:
        """The occurrence of a fixed instant (``at:``): shifted, dated by its local date."""
        return Occurrence(ts + self.shift_ms, local_time(ts, days.zone).date().isoformat())


def _day_in(year: int, month: int, day: int) -> int:
    """February 29 in a year without one is February 28."""
    if month == 2 and day == 29 and not _leap(year):
        return 28
    return day


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def month_day(value: Any, days: LocalDays) -> tuple[int, int] | None:
    """The (month, day) that a yearly aggregate's value names, or None: ``YYYY-MM-DD`` or
    ``MM-DD`` text, or a timestamp (its local date)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            local = local_time(value, days.zone)
        except (OverflowError, ValueError):
            return None
        return local.month, local.day
    if isinstance(value, str):
        match = _YEARLY_TEXT.match(value)
        if match is None:
            return None
        month, day = int(match[2]), int(match[3])
        try:
            date(2000, month, day)  # a leap year: every real month-day exists in it
        except ValueError:
            return None
        return month, day
    return None


def is_birthday(text: str) -> bool:
    """Whether a text is a date a person can have as a birthday: ``YYYY-MM-DD`` (a real
    date) or ``MM-DD``."""
    match = _YEARLY_TEXT.match(text)
    if match is None:
        return False
    year = int(match[1]) if match[1] else 2000
    try:
        date(year, int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def dated_line(line: str) -> tuple[date, str] | None:
    """A dated list's line (``2027-02-06 春节``) as (date, name), or None."""
    match = _DATED_LINE.match(line)
    if match is None:
        return None
    try:
        return date.fromisoformat(match[1]), match[2].strip()
    except ValueError:
        return None


def time_of_day(text: str) -> int | None:
    """``HH:MM`` (00:00-23:59) as ms after midnight, or None."""
    match = _TIME_OF_DAY.match(text)
    if match is None:
        return None
    return (int(match[1]) * 60 + int(match[2])) * MINUTE_MS

"""Compiling calendar triggers: dated list entries, fixed instants and yearly dates."""

from __future__ import annotations

import difflib
from dataclasses import replace
from datetime import date, datetime

from taggers.calendars import Calendar, dated_line, time_of_day
from taggers.events import to_epoch_ms
from taggers.expr import DURATION, DYN, STRING, TIMESTAMP
from taggers.expr.checked import article, suggest
from taggers.rulefile import CalendarSpec
from taggers.ruleset.aggregates import AggregatesCompiler
from taggers.yaml_source import Path_, Position, SourceMap


class CalendarsCompiler(AggregatesCompiler):
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

"""A rule set's run-time plan: the indexes the engine reads on every event and deadline.

Built once per rule set (``Plan(rules)``, by ``Engine``), so that the rule set itself stays
immutable: which aggregates an event type feeds, which rules read what, which values
time alone moves, which timers run in which stage, and how each name is read. The two
lookups keyed by what happens at run time (by event type, by set of changed names) are
filled on first use; they are the plan's, never the rule set's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from taggers.aggregates import Window
from taggers.engine.reading import Reader, reader
from taggers.events import BehaviourEvent
from taggers.ruleset import NOW, Aggregate, Alert, RuleSet, Tag, Timer

MAX_CACHED_FAMILY_NAMES: Final = 100_000


@dataclass(frozen=True, slots=True)
class Affected:
    """The tags, groups and edge alerts to re-evaluate when some names change."""

    tags: tuple[Tag, ...] = ()
    groups: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()


def _read_by_rules(rules: RuleSet) -> set[str]:
    """Every name a tag, alert or transition reads."""
    read: set[str] = set()
    for tag in rules.tags:
        read |= tag.reads
    for alert in rules.alerts.values():
        read |= alert.reads | alert.detail_reads
        if alert.pending:
            read.add(alert.pending)
    for transitions in rules.lifecycle.by_stage.values() if rules.lifecycle else ():
        for transition in transitions:
            read |= transition.when.reads if transition.when else set()
    return read


class Plan:
    """The run-time indexes of one rule set (see the module's docstring)."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.version = rules.version
        read = _read_by_rules(rules)
        # Time-varying aggregates some rule reads: only they make deadlines.
        watched = tuple(rules.aggregates[name] for name in sorted(read & rules.time_varying))
        self.timer_alerts = tuple(a for a in rules.alerts.values() if a.timer is not None)
        self.pending_alerts = tuple(a for a in rules.alerts.values() if a.pending is not None)
        self.calendar_alerts = tuple(a for a in rules.alerts.values() if a.calendar is not None)
        self.windows: tuple[tuple[str, str, Window], ...] = tuple(
            (a.name, a.key, a.window) for a in watched if a.window is not None
        )
        self.watched_windows = frozenset(name for name, _, _ in self.windows)
        self.clock_watched: tuple[Aggregate, ...] = tuple(a for a in watched if a.window is None)
        # Aggregates whose change can move the next deadline: timer anchors and what timer
        # durations read, and the unwindowed time-varying ones. Windows are handled apart:
        # their deadline moves only when their oldest bucket does.
        timers = [a.timer for a in self.timer_alerts if a.timer is not None]
        if rules.lifecycle is not None:
            timers += [t.timer for ts in rules.lifecycle.by_stage.values() for t in ts if t.timer]
        # A calendar alert is scheduled only while its `when` holds: what `when` reads (and
        # the yearly date) can move it.
        self.deadline_inputs = frozenset(
            {t.anchor for t in timers}.union(*(t.after.reads for t in timers))
            | {a.name for a in self.clock_watched}
            | set().union(*(a.reads for a in self.calendar_alerts))
        )
        self.expiring_states = tuple(
            a for a in rules.aggregates.values() if a.kind.time and a.kind.time.expire
        )
        self.expiring_tags = any(tag.expires_ms is not None for tag in rules.tags)
        self.timers_in = self._timers_by_stage(rules)
        self.tag_rules = frozenset(tag.name for tag in rules.tags)
        self.state_keys = frozenset(a.key for a in rules.aggregates.values())
        self.every_name = frozenset(rules.types) | {"stage"}
        # Time moves at every step: rules that read `now` are decided again at each one.
        self.moved_by_time: tuple[str, ...] = (NOW,) if NOW in read else ()
        names = ["stage", NOW, "event", "lists", *rules.params, *rules.aggregates]
        self.readers: dict[str, Reader] = {name: reader(rules, name) for name in names}
        self.family_names: dict[tuple[str, object], str | None] = {}
        self._by_type: dict[str, tuple[Aggregate, ...]] = {}
        # The event types some of whose aggregates have a filter (``where:``), by type.
        self._filtered: dict[str, bool] = {}
        self._alerts_on: dict[str, tuple[Alert, ...]] = {}
        self._affected: dict[frozenset[str], Affected] = {}

    def _timers_by_stage(self, rules: RuleSet) -> dict[str | None, tuple[tuple[Timer, str], ...]]:
        """The timers that run in each stage (None: any stage), with their fired keys."""
        alert_timers = tuple(
            (a.timer, "alert:" + a.name) for a in self.timer_alerts if a.timer is not None
        )
        found: dict[str | None, tuple[tuple[Timer, str], ...]] = {None: alert_timers}
        for stage, rules_from in (rules.lifecycle.by_stage if rules.lifecycle else {}).items():
            found[stage] = alert_timers + tuple(
                (t.timer, t.rule) for t in rules_from if t.timer is not None
            )
        return found

    def aggregates_for(self, event_type: str) -> tuple[Aggregate, ...]:
        """The aggregates an event of this type updates (kept per type)."""
        found = self._by_type.get(event_type)
        if found is None:
            found = tuple(
                a
                for a in self.rules.aggregates.values()
                if a.types is None
                or event_type in a.types
                or event_type in a.close_types
                or event_type in a.minus_types
            )
            self._by_type[event_type] = found
        return found

    def aggregates_fed_by(self, event: BehaviourEvent) -> tuple[Aggregate, ...]:
        """The aggregates an event feeds: those of its type whose filter (``where:``), if
        any, admits it (an event a filter refuses neither feeds nor closes anything)."""
        found = self.aggregates_for(event.type)
        filtered = self._filtered.get(event.type)
        if filtered is None:
            filtered = self._filtered[event.type] = any(a.where is not None for a in found)
        if not filtered:  # none of the type's aggregates has a filter: the usual case
            return found
        return tuple(a for a in found if a.where is None or a.where(event))

    def alerts_on(self, event_type: str) -> tuple[Alert, ...]:
        """The per-event alerts (``upon:``) an event of this type raises (kept per type)."""
        found = self._alerts_on.get(event_type)
        if found is None:
            found = tuple(
                a for a in self.rules.alerts.values() if a.on is not None and event_type in a.on
            )
            self._alerts_on[event_type] = found
        return found

    def affected_by(self, changed: frozenset[str]) -> Affected:
        """Tags, groups and edge alerts that read any of ``changed`` (kept per set)."""
        found = self._affected.get(changed)
        if found is None:
            rules = self.rules
            tags = tuple(t for t in rules.tags if t.group is None and t.reads & changed)
            groups = tuple(
                name
                for name, members in rules.groups.items()
                if any(m.reads & changed for m in members)
            )
            alerts = tuple(a for a in rules.alerts.values() if a.edge and a.reads & changed)
            found = Affected(tags, groups, alerts)
            self._affected[changed] = found
        return found

"""What changes when one rule set replaces another: before it goes live.

``new_aggregates`` says which aggregates stored profiles never kept (they start empty
for existing users); ``diff_outcomes`` replays events under both rule sets and counts,
per tag, stage and alert, the users who gain or lose it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from taggers.engine import Engine
from taggers.outputs import Alert
from taggers.replay import BadLine, Replay
from taggers.ruleset import RuleSet
from taggers.yaml_source import Position

SAMPLE_SIZE = 5
BACKFILL_HINT = (
    "stored profiles have no state for it, so it counts only events applied from now on;"
    " to backfill it, rebuild the profiles from Kafka retention or a file"
    " (docs/rules.md, Backfilling a new aggregate)"
)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a rule author should know about a change, with where it is."""

    where: Position
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def new_aggregates(old: RuleSet, new: RuleSet) -> list[Notice]:
    """Aggregates of ``new`` that profiles kept under ``old`` have no state for: new names
    and changed definitions, with the rules that read them."""
    notices = []
    readers = _readers(new)
    for name, aggregate in new.aggregates.items():
        if name.startswith("_"):
            continue  # an internal timer anchor, named by its definition
        before = old.aggregates.get(name)
        if before is not None and before.key == aggregate.key:
            continue
        what = "is new" if before is None else "has a new definition"
        read_by = ", ".join(readers.get(name, [])) or "no rule yet"
        notices.append(
            Notice(
                new.declared_at.get(name, Position(new.directory, 1, 1)),
                f"aggregate {name!r} {what} (read by {read_by}): {BACKFILL_HINT}",
            )
        )
    return notices


def _readers(rules: RuleSet) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for tag in rules.tags:
        for name in tag.reads:
            found.setdefault(name, []).append(f"tag {tag.name}")
    for alert in rules.alerts.values():
        for name in alert.reads:
            found.setdefault(name, []).append(f"alert {alert.name}")
    for transitions in rules.lifecycle.by_stage.values() if rules.lifecycle else ():
        for transition in transitions:
            for name in transition.when.reads if transition.when else ():
                found.setdefault(name, []).append(f"transition {transition.rule}")
    return {name: sorted(set(users)) for name, users in found.items()}


@dataclass(slots=True)
class Change:
    """The users who gain and who lose one tag, stage or alert."""

    gain: set[str] = field(default_factory=set)
    lose: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """Counts and a sample of user ids (the first, by id) of each side."""
        return {
            "gain": len(self.gain),
            "lose": len(self.lose),
            "gain_sample": sorted(self.gain)[:SAMPLE_SIZE],
            "lose_sample": sorted(self.lose)[:SAMPLE_SIZE],
        }


@dataclass(slots=True)
class OutcomeDiff:
    """Per tag, stage and alert, the users for whom the new rules decide otherwise."""

    old_version: str
    new_version: str
    users: int = 0
    events: int = 0
    bad_lines: int = 0
    tags: dict[str, Change] = field(default_factory=dict)
    stages: dict[str, Change] = field(default_factory=dict)
    alerts: dict[str, Change] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; only what changes is listed."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "users": self.users,
            "events": self.events,
            "bad_lines": self.bad_lines,
            "tags": {name: change.to_dict() for name, change in sorted(self.tags.items())},
            "stages": {name: change.to_dict() for name, change in sorted(self.stages.items())},
            "alerts": {name: change.to_dict() for name, change in sorted(self.alerts.items())},
            "notices": [str(notice) for notice in self.notices],
        }


@dataclass(frozen=True, slots=True)
class _Outcome:
    tags: dict[str, frozenset[str]]  # user -> tags at the end
    stages: dict[str, str | None]  # user -> stage at the end
    alerts: dict[str, frozenset[str]]  # user -> alerts raised at any time
    events: int
    bad_lines: int


def _replay(rules: RuleSet, lines: Iterable[bytes]) -> _Outcome:
    replay = Replay(Engine(rules))
    alerts: dict[str, set[str]] = {}
    bad = 0
    for item in replay.run(lines):
        if isinstance(item, BadLine):
            bad += 1
        elif isinstance(item, Alert):
            alerts.setdefault(item.user_id, set()).add(item.name)
    store = replay.store
    profiles = store.load(list(store.users()))
    return _Outcome(
        {user: frozenset(p.tags) for user, p in profiles.items()},
        {user: p.stage for user, p in profiles.items()},
        {user: frozenset(names) for user, names in alerts.items()},
        sum(p.events for p in profiles.values()),
        bad,
    )


def _compare(
    before: dict[str, Any], after: dict[str, Any], users: set[str], as_set: bool
) -> dict[str, Change]:
    changes: dict[str, Change] = {}
    for user in users:
        old, new = before.get(user), after.get(user)
        if as_set:
            old_names, new_names = old or frozenset(), new or frozenset()
        else:
            old_names = frozenset() if old is None else frozenset([old])
            new_names = frozenset() if new is None else frozenset([new])
        for name in new_names - old_names:
            changes.setdefault(name, Change()).gain.add(user)
        for name in old_names - new_names:
            changes.setdefault(name, Change()).lose.add(user)
    return changes


def diff_outcomes(
    old: RuleSet, new: RuleSet, read_events: Callable[[], Iterable[bytes]]
) -> OutcomeDiff:
    """Replay the events (``read_events`` gives them afresh for each rule set) under both
    rule sets and compare each user's final tags and stage, and the alerts they got."""
    before, after = _replay(old, read_events()), _replay(new, read_events())
    users = set(before.stages) | set(after.stages)
    return OutcomeDiff(
        old.version,
        new.version,
        users=len(users),
        events=after.events,
        bad_lines=after.bad_lines,
        tags=_compare(before.tags, after.tags, users, as_set=True),
        stages=_compare(before.stages, after.stages, users, as_set=False),
        alerts=_compare(before.alerts, after.alerts, users, as_set=True),
        notices=new_aggregates(old, new),
    )

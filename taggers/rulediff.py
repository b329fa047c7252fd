"""What changes when one rule set replaces another: before it goes live.

``new_aggregates`` says which state stored profiles never kept: aggregates, and the last
times that timers count from (they start empty for existing users); ``diff_outcomes``
replays events under both rule sets and counts, per tag, stage and alert, the users who
gain or lose it, and which of them the live deployment cannot reach without a backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from taggers.engine import Engine
from taggers.outputs import Alert
from taggers.replay import BadLine, Replay
from taggers.ruleset import Aggregate, RuleSet, Timer
from taggers.yaml_source import Position

SAMPLE_SIZE = 5
ANCHOR = "_last:"  # the internal last-seen aggregates timers count from
BACKFILL_HINT = (
    "stored profiles have no state for it, so it counts only events applied from now on;"
    " to backfill it, rebuild the profiles from Kafka retention or a file"
    " (docs/rules.md, Backfilling a new aggregate)"
)
TIMER_BACKFILL_HINT = (
    "to cover existing users, rebuild the profiles from Kafka retention or a file"
    " (docs/rules.md, Backfilling a new aggregate)"
)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a rule author should know about a change, with where it is."""

    where: Position
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def unkept(old: RuleSet, new: RuleSet) -> dict[str, Aggregate]:
    """The aggregates of ``new``, timer anchors included, that profiles kept under ``old``
    have no state for: new names, changed definitions and new timer anchors."""
    kept = {aggregate.key for aggregate in old.aggregates.values()}
    return {name: a for name, a in new.aggregates.items() if a.key not in kept}


def state_name(name: str) -> str:
    """How people read an aggregate's name: a timer anchor is the last time of its types."""
    if name.startswith(ANCHOR):
        types = name.removeprefix(ANCHOR).split(",")
        return "the time of the last " + " or ".join("event" if t == "*" else t for t in types)
    return f"aggregate {name!r}"


def new_aggregates(old: RuleSet, new: RuleSet) -> list[Notice]:
    """State of ``new`` that profiles kept under ``old`` do not have: new aggregates and
    changed definitions, and the anchors of timers (the last time of some event types)
    the old rules never kept, each with the rules that read it and how to backfill it."""
    notices = []
    readers = _readers(new)
    for name, aggregate in unkept(old, new).items():
        where = new.declared_at.get(name, Position(new.directory, 1, 1))
        read_by = ", ".join(readers.get(name, [])) or "no rule yet"
        if name.startswith(ANCHOR):
            types = " or ".join(sorted(aggregate.types or {"event"}))
            message = (
                f"the timer of {read_by} counts from {state_name(name)}, which the live rules"
                f" never kept: existing users have no such time, so it fires for them only"
                f" after their next {types}; {TIMER_BACKFILL_HINT}"
            )
        else:
            before = old.aggregates.get(name)
            what = "is new" if before is None else "has a new definition"
            message = f"aggregate {name!r} {what} (read by {read_by}): {BACKFILL_HINT}"
        notices.append(Notice(where, message))
    return notices


def _timer_reads(timer: Timer | None) -> frozenset[str]:
    return frozenset() if timer is None else frozenset({timer.anchor}) | timer.after.reads


def _stage_reads(rules: RuleSet) -> frozenset[str]:
    """What the lifecycle reads: a user's stage depends on every transition."""
    found: set[str] = set()
    for transitions in rules.lifecycle.by_stage.values() if rules.lifecycle else ():
        for transition in transitions:
            found |= transition.when.reads if transition.when else set()
            found |= _timer_reads(transition.timer)
    return frozenset(found)


def _alert_reads(rules: RuleSet, name: str) -> frozenset[str]:
    alert = rules.alerts[name]
    found = alert.reads | _timer_reads(alert.timer)
    if alert.pending is not None:
        found |= {alert.pending}
    if alert.raised_by_transition:
        found |= _stage_reads(rules)
    return found


def _tag_reads(rules: RuleSet, rule: str) -> frozenset[str]:
    """What decides a tag: its own rule, and every member's rule in an exclusive group."""
    tags = {tag.name: tag for tag in rules.tags}
    tag = tags.get(rule)
    if tag is None:
        return frozenset()
    members = rules.groups.get(tag.group, (tag,)) if tag.group else (tag,)
    return frozenset().union(*(member.reads for member in members))


def _readers(rules: RuleSet) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for tag in rules.tags:
        for name in tag.reads:
            found.setdefault(name, []).append(f"tag {tag.name}")
    for alert in rules.alerts.values():
        for name in alert.reads | _timer_reads(alert.timer):
            found.setdefault(name, []).append(f"alert {alert.name}")
    for transitions in rules.lifecycle.by_stage.values() if rules.lifecycle else ():
        for transition in transitions:
            reads = transition.when.reads if transition.when else frozenset()
            for name in reads | _timer_reads(transition.timer):
                found.setdefault(name, []).append(f"transition {transition.rule}")
    return {name: sorted(set(users)) for name, users in found.items()}


@dataclass(slots=True)
class Change:
    """The users who gain and who lose one tag, stage or alert."""

    gain: set[str] = field(default_factory=set)
    lose: set[str] = field(default_factory=set)
    # Of both sides, the users whose change depends on state the live profiles never kept
    # (``needs``): the live deployment reaches them only after a backfill.
    backfill: set[str] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """Counts and a sample of user ids (the first, by id) of each side."""
        return {
            "gain": len(self.gain),
            "lose": len(self.lose),
            "gain_sample": sorted(self.gain)[:SAMPLE_SIZE],
            "lose_sample": sorted(self.lose)[:SAMPLE_SIZE],
            "backfill": len(self.backfill),
            "backfill_sample": sorted(self.backfill)[:SAMPLE_SIZE],
            "backfill_needs": sorted(state_name(name) for name in self.needs),
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
    held: dict[str, frozenset[str]]  # user -> keys of the aggregates they hold state of
    tag_rules: dict[str, str]  # tag -> the rule that made it (a family's members)


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
        {user: frozenset(p.aggs) for user, p in profiles.items()},
        {tag: str(r["rule"]) for p in profiles.values() for tag, r in p.tags.items()},
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
    result = OutcomeDiff(
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
    missing = unkept(old, new)
    if missing:
        rules = {**before.tag_rules, **after.tag_rules}
        for name, change in result.tags.items():
            _mark_backfill(change, _tag_reads(new, rules.get(name, name)), missing, after)
        stage_reads = _stage_reads(new)
        for change in result.stages.values():
            _mark_backfill(change, stage_reads, missing, after)
        for name, change in result.alerts.items():
            reads = _alert_reads(new, name) if name in new.alerts else frozenset()
            _mark_backfill(change, reads, missing, after)
    return result


def _mark_backfill(
    change: Change, reads: frozenset[str], missing: dict[str, Aggregate], after: _Outcome
) -> None:
    """The users of a change who hold, under the new rules, state that the live profiles
    never kept and the change depends on: the live deployment would decide otherwise for
    them until a backfill (or their next events) fills it."""
    needed = {name: missing[name].key for name in reads if name in missing}
    if not needed:
        return
    for user in change.gain | change.lose:
        held = after.held.get(user, frozenset())
        found = {name for name, key in needed.items() if key in held}
        if found:
            change.backfill.add(user)
            change.needs |= found

"""Folding events into aggregate states, and time into time-varying ones.

Every aggregate folds as its kind declares (``taggers.aggregates.KINDS``): a monoid kind
adds the event's value (into a window's bucket when windowed); a kind that folds whole
events (``pending``) does so itself. An aggregate's filter (``where:``) is asked first. A
keyed aggregate (``by:``) is a kind like the others here: its extractor gives (key, value)
pairs. Nothing here branches on a kind's name.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from taggers.aggregates import State
from taggers.events import BehaviourEvent
from taggers.profile import Profile

if TYPE_CHECKING:
    from taggers.engine.plan import Plan


def fold_event(
    plan: Plan, profile: Profile, event: BehaviourEvent, now: int, skipped: Counter[str] | None
) -> tuple[frozenset[str], bool]:
    """Fold the event in; return the aggregates that changed and whether the next
    deadline may have moved (``now`` changes at every step, for the rules that read it)."""
    changed = list(plan.moved_by_time)
    moves_deadline = False
    aggs = profile.aggs
    watched_windows, deadline_inputs = plan.watched_windows, plan.deadline_inputs
    for aggregate in plan.aggregates_fed_by(event):
        kind = aggregate.kind
        if kind.fold_event is not None:
            state, moved = kind.fold_event(aggregate, aggs.get(aggregate.key), event)
            if not moved:
                _remember(aggs, aggregate.key, state)
                continue
            moves_deadline = True  # its items are its deadlines
        else:
            value = None
            if aggregate.extract is not None:
                value = aggregate.extract(event)
                if value is None:
                    continue
                if not kind.accepts(value):
                    _skipped(skipped, aggregate.name)
                    continue
            old = aggs.get(aggregate.key)
            if aggregate.window is not None:
                oldest = old[0][0] if old else None
                state = aggregate.window.add(kind, old, value, event.ts, now, aggregate.limit)
                if aggregate.name in watched_windows and (not state or state[0][0] != oldest):
                    moves_deadline = True
            else:
                state = kind.add(old, value, event.ts, aggregate.limit)
                if state is old and not kind.mutates:
                    continue
        if state is None:
            aggs.pop(aggregate.key, None)
        else:
            aggs[aggregate.key] = state
        changed.append(aggregate.name)
        if aggregate.name in deadline_inputs:
            moves_deadline = True
    return frozenset(changed), moves_deadline


def _remember(aggs: dict[str, Any], key: str, state: State) -> None:
    """Keep a state whose value did not move but whose records did (pending's record
    of a key closed while not open, which a merge with another profile needs)."""
    if state is not None:
        aggs[key] = state


def _skipped(skipped: Counter[str] | None, name: str) -> None:
    """Count a value the aggregate could not take (the caller reports these)."""
    if skipped is not None:
        skipped[name] += 1


def fold_time(plan: Plan, profile: Profile, now: int) -> frozenset[str]:
    """The time-varying aggregates whose value moved by ``now``; prunes their windows."""
    changed = list(plan.moved_by_time)
    aggs = profile.aggs
    for name, key, window in plan.windows:
        state = aggs.get(key)
        if state is not None and state[0][0] < window.first_bucket(now):
            kept = window.prune(state, now)
            if kept:
                aggs[key] = kept
            else:
                del aggs[key]
            changed.append(name)
    for aggregate in plan.clock_watched:
        state = aggs.get(aggregate.key)
        ticks = aggregate.kind.time
        if state is not None and ticks is not None and ticks.moved(state, now):
            changed.append(aggregate.name)
    return frozenset(changed)


def expire(plan: Plan, profile: Profile, now: int) -> None:
    """Drop what time has closed from the states of kinds that expire (pending items)."""
    aggs = profile.aggs
    for aggregate in plan.expiring_states:
        ticks = aggregate.kind.time
        state = aggs.get(aggregate.key)
        if state and ticks is not None and ticks.expire is not None:
            kept = ticks.expire(state, now)
            if kept is None:
                del aggs[aggregate.key]

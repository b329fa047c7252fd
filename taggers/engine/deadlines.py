"""Deadlines: when a user's state next changes with time alone, and the timers that fire.

A profile keeps one ``due`` time: the earliest of its watched windows' oldest buckets
leaving, its time-varying kinds' next change (a day count stepping, a pending item coming
due), pending reminders, tag expiries, the timers of its current stage and the next date
of its calendar alerts.
"""

from __future__ import annotations

import math
from typing import Final

from taggers.aggregates.pending import next_reminders
from taggers.calendars import Occurrence
from taggers.durations import DAY_MS
from taggers.engine.plan import Plan
from taggers.engine.step import Step, truth
from taggers.ruleset import Alert, Timer

MAX_DELAY_MS: Final = 1000 * 365 * DAY_MS  # a timer later than a thousand years never fires
CALENDAR_FIRED: Final = "calendar:"


def timer_due(step: Step, timer: Timer) -> tuple[int, int] | None:
    """(anchor, due time) of a timer, or None; computed once per step."""
    key = id(timer)
    if key in step.dues:
        return step.dues[key]
    found = None
    anchor = step.profile.aggs.get(timer.anchor)
    if anchor is not None:
        after = timer.after.evaluate(step.values)
        # Past MAX_DELAY_MS nothing would ever fire, and such a due time (or an
        # infinite one) could not be stored: no deadline.
        if isinstance(after, int | float) and math.isfinite(after) and abs(after) <= MAX_DELAY_MS:
            found = anchor, anchor + int(after)
    step.dues[key] = found
    return found


def timer_fires(step: Step, timer: Timer, key: str) -> bool:
    """True once per anchor (the last event it counts from), when its time has come."""
    found = timer_due(step, timer)
    if found is None or found[1] > step.now or step.profile.fired.get(key) == found[0]:
        return False
    step.profile.fired[key] = found[0]
    return True


def next_deadline(plan: Plan, step: Step) -> int | None:
    """The user's next deadline after this step, or None."""
    profile = step.profile
    now = profile.clock
    aggs = profile.aggs
    candidates: list[int] = []
    for _, key, window in plan.windows:
        state = aggs.get(key)
        if state is not None:
            # Window.next_change, inlined on this hot path: watched windows are pruned
            # as of now (a bucket leaving is a deadline), so the oldest bucket decides.
            leaves = state[0][0] + window.buckets
            days = window.days
            candidates.append(leaves * window.bucket_ms if days is None else days.start_of(leaves))
    for aggregate in plan.clock_watched:
        state = aggs.get(aggregate.key)
        ticks = aggregate.kind.time
        if state is not None and ticks is not None:
            change = ticks.next_change(state, now)
            if change is not None:
                candidates.append(change)
    for alert in plan.pending_alerts:
        assert alert.pending is not None
        pending = aggs.get(plan.rules.aggregates[alert.pending].key)
        candidates.extend(next_reminders(pending, alert.before_ms, now))
    if plan.expiring_tags:
        candidates.extend(
            expires for record in profile.tags.values() if (expires := record.get("expires"))
        )
    fired = profile.fired
    for timer, key in plan.timers_in.get(profile.stage) or plan.timers_in[None]:
        found = timer_due(step, timer)
        if found is not None and fired.get(key) != found[0]:
            candidates.append(max(found[1], now))
    if plan.calendar_alerts:
        candidates.extend(calendar_dues(plan, step))
    return min(candidates) if candidates else None


def calendar_key(alert: Alert) -> str:
    """Where a calendar alert remembers the due time of the last date it considered."""
    return CALENDAR_FIRED + alert.name


def next_occurrence(plan: Plan, step: Step, alert: Alert, floor: int) -> Occurrence | None:
    """The alert's first date due after ``floor`` and after the last one it considered."""
    calendar = alert.calendar
    assert calendar is not None
    done = step.profile.fired.get(calendar_key(alert))
    if isinstance(done, int) and done > floor:
        floor = done
    yearly = None if calendar.yearly is None else step.values[calendar.yearly]
    return calendar.next_after(floor, yearly, plan.rules.days)


def calendar_dues(plan: Plan, step: Step) -> list[int]:
    """The next date of each calendar alert whose ``when`` holds now: only those are
    scheduled, so that the deadline index does not hold every user for every holiday (a
    change of what ``when`` reads recomputes the deadline: ``Plan.deadline_inputs``)."""
    dues = []
    for alert in plan.calendar_alerts:
        if alert.when is None or truth(alert.when, step.values):
            found = next_occurrence(plan, step, alert, step.profile.clock)
            if found is not None:
                dues.append(found.due)
    return dues

"""Alerts: edge-triggered (``when`` turns true), per event (``on``), on a timer
(``since``/``after``), per pending item (``before`` its due time), at calendar dates
(``calendar``), or raised by a lifecycle transition."""

from __future__ import annotations

from typing import Any

from taggers.aggregates.pending import reminders_due
from taggers.display import json_value
from taggers.engine.deadlines import calendar_key, next_occurrence, timer_fires
from taggers.engine.plan import Plan
from taggers.engine.step import Step, reason, truth
from taggers.expr import TIMESTAMP
from taggers.outputs import Alert, Reason, output_id
from taggers.ruleset import Alert as AlertRule


def raise_alert(
    step: Step,
    alert: AlertRule,
    extra: dict[str, Any],
    *,
    extra_id: str = "",
    why: Reason | None = None,
) -> None:
    """Raise an alert with its details (and ``extra`` ones, in their JSON form), and why:
    each detail by its expression's type (a name's is the name's)."""
    values = step.values
    shown = {name: json_value(e.evaluate(values), e.type) for name, e in alert.details}
    details = shown | extra
    if why is None:
        why = (
            reason(step, alert.name, alert.when)
            if alert.when is not None
            else Reason(alert.name, step.version, {})
        )
    person = step.person_id
    step.outputs.append(
        Alert(
            output_id(person, step.cause, step.version, "alert", alert.name, extra_id),
            step.came_under,
            person,
            alert.name,
            alert.severity,
            alert.display,
            step.now,
            details,
            why,
        )
    )


def edge_alerts(step: Step, alerts: tuple[AlertRule, ...]) -> None:
    """Raise the edge alerts that turned true; re-arm those that turned false."""
    alerts_on = step.profile.alerts_on
    for alert in alerts:
        assert alert.when is not None
        on = truth(alert.when, step.values)
        if on and alert.name not in alerts_on:
            alerts_on[alert.name] = 1
            raise_alert(step, alert, {})
        elif not on:
            alerts_on.pop(alert.name, None)


def event_alerts(step: Step, alerts: tuple[AlertRule, ...]) -> None:
    """Raise the given alerts ``on`` the step's event whose ``when`` (if any) holds."""
    for alert in alerts:
        if alert.when is None or truth(alert.when, step.values):
            raise_alert(step, alert, {})


def timer_alerts(plan: Plan, step: Step) -> None:
    """Raise the timer alerts whose time has come (and whose ``when`` holds)."""
    for alert in plan.timer_alerts:
        assert alert.timer is not None
        if timer_fires(step, alert.timer, "alert:" + alert.name) and (
            alert.when is None or truth(alert.when, step.values)
        ):
            raise_alert(step, alert, {"after": alert.timer.after.source})


def calendar_alerts(plan: Plan, step: Step, due: int) -> None:
    """Raise the calendar alerts whose date is due at this deadline (``due``), once per
    date, when their ``when`` holds then; a date is considered once, fired or not."""
    fired = step.profile.fired
    for alert in plan.calendar_alerts:
        found = next_occurrence(plan, step, alert, due - 1)
        if found is None or found.due != due:
            continue
        fired[calendar_key(alert)] = due
        if alert.when is None or truth(alert.when, step.values):
            extra = (
                {"date": found.date}
                if found.name is None
                else {"date": found.date, "name": found.name}
            )
            raise_alert(step, alert, extra, extra_id=found.date)


def pending_reminders(plan: Plan, step: Step) -> None:
    """Remind once of each pending item due within its alert's ``before``."""
    for alert in plan.pending_alerts:
        assert alert.pending is not None
        state = step.profile.aggs.get(plan.rules.aggregates[alert.pending].key)
        for key, item in reminders_due(state, alert.before_ms, step.now):
            item[1] = 1
            due = json_value(item[0], TIMESTAMP)
            raise_alert(step, alert, {"key": key, "due": due}, extra_id=key)


def drop_removed_alerts(plan: Plan, step: Step) -> None:
    """Forget edge alerts that this rule set no longer has."""
    alerts_on = step.profile.alerts_on
    for gone in [name for name in alerts_on if name not in plan.rules.alerts]:
        del alerts_on[gone]

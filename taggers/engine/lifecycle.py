"""The lifecycle state machine: the initial stage, and transitions on a condition, an
event (``on``) or a timer (``since``/``after``), each with why."""

from __future__ import annotations

from taggers.engine.alerts import raise_alert
from taggers.engine.deadlines import timer_fires
from taggers.engine.plan import Plan
from taggers.engine.step import Step, reason, truth
from taggers.events import BehaviourEvent
from taggers.expr import CompiledExpr
from taggers.outputs import Reason, Transition, output_id
from taggers.ruleset import Timer
from taggers.ruleset import Transition as TransitionRule


def enter_initial(step: Step, initial: str, old: str | None = None) -> None:
    """Put the user in the initial stage (first event, or their stage is gone)."""
    profile = step.profile
    profile.stage = initial
    profile.stage_since = step.now
    step.values["stage"] = initial
    note = "first event" if old is None else "stage removed from the rules"
    why = Reason("lifecycle.initial", step.version, {}, note)
    step.outputs.append(
        Transition(
            output_id(step.person_id, step.cause, step.version, "transition", "initial"),
            step.came_under,
            step.person_id,
            old,
            initial,
            step.now,
            why,
            step.opted_out,
        )
    )


def move(
    plan: Plan, step: Step, rule: TransitionRule, decider: CompiledExpr | None, note: str = ""
) -> None:
    """Take a transition (and raise its alert, if any)."""
    profile = step.profile
    old = profile.stage
    values = {} if decider is None else reason(step, rule.rule, decider).values
    why = Reason(rule.rule, step.version, values, note)
    profile.stage = rule.to
    profile.stage_since = step.now
    step.values["stage"] = rule.to
    step.moved = True
    step.outputs.append(
        Transition(
            output_id(step.person_id, step.cause, step.version, "transition", rule.rule),
            step.came_under,
            step.person_id,
            old,
            rule.to,
            step.now,
            why,
            step.opted_out,
        )
    )
    if rule.alert is not None:
        raise_alert(step, plan.rules.alerts[rule.alert], {"from": old, "to": rule.to}, why=why)


def on_event(plan: Plan, step: Step, event: BehaviourEvent) -> None:
    """Take the first transition from the current stage that this event makes true."""
    lifecycle = plan.rules.lifecycle
    assert lifecycle is not None
    # An `upon:` transition is the user's act in the current stage: an event that
    # happened before they entered it (a late purchase from before they went dormant)
    # cannot be that act, even if it arrives now.
    entered = step.profile.stage_since
    happened_before = entered is not None and event.ts < entered
    for rule in lifecycle.by_stage.get(step.profile.stage or "", ()):
        if rule.timer is not None or (rule.on is not None and event.type not in rule.on):
            continue
        if rule.on is not None and happened_before:
            continue
        if rule.when is None or truth(rule.when, step.values):
            move(plan, step, rule, rule.when)
            return


def on_time(plan: Plan, step: Step, *, every_condition: bool = False) -> None:
    """Take the first transition from the current stage that time has made due: a
    timer, or a ``when`` that reads a time-varying value (with ``every_condition``,
    any ``when``: a rule change may have made it true)."""
    lifecycle = plan.rules.lifecycle
    assert lifecycle is not None
    for rule in lifecycle.by_stage.get(step.profile.stage or "", ()):
        if rule.timer is not None:
            if not timer_fires(step, rule.timer, rule.rule):
                continue
            if rule.when is None or truth(rule.when, step.values):
                after = rule.timer.after
                note = f"no {_anchor_types(rule.timer)} for {after.source}"
                move(plan, step, rule, after, note=note)
                return
        elif (
            rule.on is None
            and rule.when is not None
            and (every_condition or rule.when.reads & plan.rules.time_varying)
            and truth(rule.when, step.values)
        ):
            move(plan, step, rule, rule.when)
            return


def _anchor_types(timer: Timer) -> str:
    return timer.anchor.removeprefix("_last:").replace(",", " or ")

"""The engine: (profile, event, rules) -> (profile', outputs), with no I/O.

Time comes only from events and deadlines. ``apply`` first fires the user's deadlines at or
before the event's time, then applies the event; ``advance`` fires deadlines up to a clock.
A deadline is processed *as of its due time*, never as of when a sweep happened to run, so
a user's result depends only on that user's events and the clock.

Rules are evaluated only when something they read changed: an event updates the aggregates
of its type; a deadline changes the time-varying values (windows, days_since, pending).
This module orchestrates one step; the jobs are in the modules beside it: ``folding``
(aggregates and values), ``deadlines``, ``tags``, ``lifecycle``, ``alerts`` and
``presentation``, over the rule set's ``plan``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from taggers.engine import alerts, lifecycle, tags
from taggers.engine.deadlines import next_deadline
from taggers.engine.folding import expire, fold_event, fold_time
from taggers.engine.plan import Plan
from taggers.engine.presentation import aggregate_values, describe
from taggers.engine.step import Step, Values
from taggers.events import BehaviourEvent
from taggers.outputs import Output
from taggers.profile import Profile
from taggers.ruleset import RuleSet

MAX_DEADLINES_PER_ADVANCE: Final = 100_000
RECENT_EVENT_IDS: Final = 32  # a retry comes soon after the original: 32 ids is ample


class Engine:
    """Runs one compiled rule set over profiles. Swap rules by building a new Engine."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.version = rules.version
        self.plan = Plan(rules)

    def new_profile(self, user_id: str) -> Profile:
        """An empty profile for a user the engine has not seen."""
        return Profile(user_id=user_id)

    def _step(self, profile: Profile, now: int, cause: str, event: BehaviourEvent | None) -> Step:
        values = Values(self.plan.readers, profile, now, event)
        return Step(profile, now, cause, values, self.version, types=self.rules.types)

    def apply(
        self,
        profile: Profile,
        event: BehaviourEvent,
        cause: str | None = None,
        *,
        skipped: Counter[str] | None = None,
    ) -> list[Output]:
        """Fire the user's deadlines up to the event's time, then apply the event.

        The profile is updated in place (no copy on the hot path). ``cause`` names the
        event's origin for output ids (e.g. topic partition and offset); by default the
        event id. Returns the outputs in the order they happened. An event whose id is
        among the user's latest ``RECENT_EVENT_IDS`` is a producer's retry: nothing happens.
        ``skipped`` counts, by aggregate name, values that an aggregate could not take
        (a sum given a string): the caller reports them, as a wrong type is not zero.
        """
        recent = profile.recent_ids
        if event.event_id in recent:
            return []
        recent.append(event.event_id)
        if len(recent) > RECENT_EVENT_IDS:
            del recent[0]
        outputs: list[Output] = []
        if profile.due is not None and profile.due <= event.ts:
            outputs = self.advance(profile, event.ts)
        now = max(event.ts, profile.clock)
        profile.clock = now
        profile.events += 1
        plan = self.plan
        values = Values(plan.readers, profile, now, event)
        cause = cause or f"e:{event.event_id}"
        step = Step(profile, now, cause, values, self.version, outputs, types=self.rules.types)
        step.renews = True
        rules_lifecycle = self.rules.lifecycle
        if profile.stage is None and rules_lifecycle is not None:
            lifecycle.enter_initial(step, rules_lifecycle.initial)
        before = len(outputs)
        changed, moves_deadline = fold_event(plan, profile, event, now, skipped)
        if rules_lifecycle is not None:
            lifecycle.on_event(plan, step, event)
        self._evaluate(step, changed | {"stage"} if step.moved else changed)
        on_event = plan.alerts_on(event.type)
        if on_event:
            alerts.event_alerts(step, on_event)
        # Recomputing the next deadline is costly; most events (views) cannot move it.
        if moves_deadline or step.renewed or len(outputs) > before:
            profile.due = next_deadline(plan, step)
        return outputs

    def advance(self, profile: Profile, until: int) -> list[Output]:
        """Fire every deadline of this user at or before ``until``, each as of its due time."""
        outputs: list[Output] = []
        for _ in range(MAX_DEADLINES_PER_ADVANCE):
            due = profile.due
            if due is None or due > until:
                break
            self._deadline(profile, max(due, profile.clock), outputs)
        return outputs

    def recompute(self, profile: Profile) -> list[Output]:
        """Re-evaluate a stored profile under this rule set with no event, as of the user's
        own clock (``profile.clock``): what a rule change means for a user with no new
        events. Tags, stages and edge alerts are decided afresh; tags whose rule is gone
        are removed, as is the state of aggregates this rule set does not define.

        Outputs have the cause ``r:VERSION``: recomputing the same profile twice under
        one rule set gives the same ids, and the second time nothing changes.
        """
        plan = self.plan
        step = self._step(profile, profile.clock, f"r:{self.version}", None)
        tags.drop_removed_rules(plan, step)
        for key in [key for key in profile.aggs if key not in plan.state_keys]:
            del profile.aggs[key]
        alerts.drop_removed_alerts(plan, step)
        rules_lifecycle = self.rules.lifecycle
        if rules_lifecycle is not None and profile.events:
            if profile.stage not in rules_lifecycle.stages:
                # No stage, or one the rules no longer have: start over from the initial.
                lifecycle.enter_initial(step, rules_lifecycle.initial, old=profile.stage)
            lifecycle.on_time(plan, step, every_condition=True)
        self._evaluate(step, plan.every_name)
        alerts.timer_alerts(plan, step)
        profile.due = next_deadline(plan, step)
        return step.outputs

    def value_of(
        self, name: str, profile: Profile, now: int, event: BehaviourEvent | None = None
    ) -> Any:
        """The value an expression sees for ``name`` at ``now``."""
        return self.plan.readers[name](profile, now, event)

    def aggregate_values(self, profile: Profile, now: int | None = None) -> dict[str, Any]:
        """Every declared aggregate's value for a profile (internal timer anchors left out)."""
        return aggregate_values(self.plan, profile, now)

    def describe(self, profile: Profile, now: int | None = None) -> dict[str, Any]:
        """A profile as people and marketing systems read it (JSON-ready): stage, tags with
        why and since when, and aggregate values."""
        return describe(self.plan, profile, now)

    def _deadline(self, profile: Profile, now: int, outputs: list[Output]) -> None:
        """One deadline, as of its due time: expiries, timers, and what time moved."""
        plan = self.plan
        due = profile.due if profile.due is not None else now  # this deadline's time
        profile.clock = now
        values = Values(plan.readers, profile, now, None)
        step = Step(profile, now, f"t:{now}", values, self.version, outputs, types=self.rules.types)
        tags.expire_tags(plan, step)
        if self.rules.lifecycle is not None:
            lifecycle.on_time(plan, step)
        changed = fold_time(plan, profile, now)
        self._evaluate(step, changed | {"stage"} if step.moved else changed)
        alerts.timer_alerts(plan, step)
        alerts.pending_reminders(plan, step)
        if plan.calendar_alerts:
            alerts.calendar_alerts(plan, step, due)
        expire(plan, profile, now)
        profile.due = next_deadline(plan, step)

    def _evaluate(self, step: Step, changed: frozenset[str]) -> None:
        """Re-decide the tags, groups and edge alerts that read something that changed."""
        affected = self.plan.affected_by(changed)
        if affected.tags or affected.groups:
            tags.evaluate_tags(self.plan, step, affected.tags, affected.groups)
        if affected.alerts:
            alerts.edge_alerts(step, affected.alerts)

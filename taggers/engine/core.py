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
from dataclasses import replace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from taggers.engine import alerts, lifecycle, tags
from taggers.engine.absorbing import absorb_state, later_consent
from taggers.engine.deadlines import next_deadline
from taggers.engine.folding import expire, fold_event, fold_time
from taggers.engine.plan import Plan
from taggers.engine.presentation import aggregate_values, describe
from taggers.engine.step import Step, Values
from taggers.events import OPT_IN, OPT_OUT, BehaviourEvent
from taggers.outputs import Alert, IdentityMerge, Output, Reason, Transition, output_id
from taggers.profile import RECENT_EVENT_IDS, Profile
from taggers.ruleset import RuleSet

MAX_DEADLINES_PER_ADVANCE: Final = 100_000
_CONSENT: Final = {OPT_OUT: "out", OPT_IN: "in"}


# Subclassed by tests (an engine that fails on some events): a compiled class allows that only
# when it says so.
@mypyc_attr(allow_interpreted_subclasses=True)
class Engine:
    """Runs one compiled rule set over profiles. Swap rules by building a new Engine."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.version = rules.version
        self.plan = Plan(rules)
        # Alerts not sent because the person opted out, by alert name: callers that
        # report them (the worker's metrics) read and clear it.
        self.suppressed: Counter[str] = Counter()

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
        if event.type in _CONSENT:
            said = [event.ts, _CONSENT[event.type]]
            profile.consent = later_consent(profile.consent, said)
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
        return self._consented(profile, outputs)

    def advance(self, profile: Profile, until: int) -> list[Output]:
        """Fire every deadline of this user at or before ``until``, each as of its due time."""
        outputs: list[Output] = []
        for _ in range(MAX_DEADLINES_PER_ADVANCE):
            due = profile.due
            if due is None or due > until:
                break
            self._deadline(profile, max(due, profile.clock), outputs)
        return self._consented(profile, outputs)

    def absorb(self, survivor: Profile, absorbed: Profile, now: int, cause: str) -> list[Output]:
        """Merge ``absorbed`` (another profile of the same person) into ``survivor``, as
        of ``now``: both are advanced to it, their states combine (``absorbing``), and the
        rules decide again. Outputs: what the advance fired, the survivor's net tag
        changes, at most one transition (from the survivor's stage), and one
        ``identity_merge``. ``absorbed`` is left as it was advanced; the caller links it.
        """
        now = max(now, survivor.clock, absorbed.clock)
        outputs = self.advance(survivor, now) + self.advance(absorbed, now)
        stage_before = survivor.stage
        had = {name: record["since"] for name, record in absorbed.tags.items()}
        absorb_state(self.plan, survivor, absorbed, now)
        step = self._step(survivor, now, cause, None)
        rules_lifecycle = self.rules.lifecycle
        if rules_lifecycle is not None and survivor.stage not in rules_lifecycle.stages:
            survivor.stage = None  # neither had a stage these rules know
        if rules_lifecycle is not None and survivor.events:
            if survivor.stage is None:
                lifecycle.enter_initial(step, rules_lifecycle.initial)
            lifecycle.on_time(self.plan, step, every_condition=True)
        self._evaluate(step, self.plan.every_name)
        alerts.timer_alerts(self.plan, step)
        for output in step.outputs:  # a tag the absorbed profile held is held since then
            if output.kind == "tag_change" and output.op == "add" and output.tag in had:
                survivor.tags[output.tag]["since"] = had[output.tag]
        outputs += _one_transition(step, stage_before)
        survivor.due = next_deadline(self.plan, step)
        ids = (survivor.user_id, *survivor.ids)
        merge_id = output_id(survivor.user_id, cause, self.version, "merge", absorbed.user_id)
        why = Reason("identity", self.version, {}, f"{absorbed.user_id} joined {ids[0]}")
        outputs.append(
            IdentityMerge(
                id=merge_id,
                user_id=survivor.user_id,
                person_id=survivor.user_id,
                absorbed=absorbed.user_id,
                ids=ids,
                at=now,
                reason=why,
            )
        )
        return self._consented(survivor, outputs)

    def drain_suppressed(self) -> Counter[str]:
        """The alerts suppressed since the last call, by name (and start counting anew)."""
        drained, self.suppressed = self.suppressed, Counter()
        return drained

    def _consented(self, profile: Profile, outputs: list[Output]) -> list[Output]:
        """The outputs a marketing system may act on: none of an opted-out person's alerts
        (counted in ``suppressed``; their state moved all the same, so opting in again
        does not set off a burst of them)."""
        if not outputs or not profile.opted_out:
            return outputs
        kept: list[Output] = []
        for output in outputs:
            if isinstance(output, Alert):
                self.suppressed[output.name] += 1
            else:
                kept.append(output)
        return kept

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


def _one_transition(step: Step, stage_before: str | None) -> list[Output]:
    """A merge's outputs with at most one transition: from the survivor's stage before
    the merge to the merged person's stage (none if they are the same)."""
    moves = [o for o in step.outputs if isinstance(o, Transition)]
    others: list[Output] = [o for o in step.outputs if not isinstance(o, Transition)]
    stage = step.profile.stage
    if stage is None or stage == stage_before:
        return others
    if moves:
        return [replace(moves[-1], from_stage=stage_before), *others]
    user = step.profile.user_id
    why = Reason("identity", step.version, {}, "the stage of the profile active last")
    move_id = output_id(user, step.cause, step.version, "transition", "identity")
    moved = Transition(move_id, user, user, stage_before, stage, step.now, why, step.opted_out)
    return [moved, *others]

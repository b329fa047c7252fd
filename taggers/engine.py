"""The engine: (profile, event, rules) -> (profile', outputs), with no I/O.

Time comes only from events and deadlines. ``apply`` first fires the user's deadlines at or
before the event's time, then applies the event; ``advance`` fires deadlines up to a clock.
A deadline is processed *as of its due time*, never as of when a sweep happened to run, so
a user's result depends only on that user's events and the clock.

Rules are evaluated only when something they read changed: an event updates the aggregates
of its type; a deadline changes the time-varying values (windows, days_since, pending).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from taggers.aggregates import _key as value_key
from taggers.durations import DAY_MS
from taggers.events import BehaviourEvent, format_ts, to_epoch_ms
from taggers.expr import CompiledExpr
from taggers.outputs import Alert, Output, Reason, TagChange, Transition, output_id
from taggers.profile import Profile
from taggers.ruleset import Aggregate, RuleSet, Tag, Timer
from taggers.ruleset import Alert as AlertRule
from taggers.ruleset import Transition as TransitionRule

MAX_DEADLINES_PER_ADVANCE: Final = 100_000
MAX_DELAY_MS: Final = 1000 * 365 * DAY_MS  # a timer later than a thousand years never fires
RECENT_EVENT_IDS: Final = 32  # a retry comes soon after the original: 32 ids is ample
MAX_CACHED_FAMILY_NAMES: Final = 100_000
EXPIRED: Final = "expired:"
Reader = Callable[[Profile, int, BehaviourEvent | None], Any]
_UNSAFE = re.compile(r"[\s\x00-\x1f\"'`{}\[\]<>,;:/\\|]+")


def family_member(family: str, value: object) -> str | None:
    """The tag name for a family value: ``source`` + ``app`` -> ``source_app``."""
    if value is None or value == "":
        return None
    cleaned = _UNSAFE.sub("_", str(value).strip().lower()).strip("_")[:64]
    return f"{family}_{cleaned}" if cleaned else None


class _Values(dict[str, Any]):
    """Values that expressions read, computed on first use and kept for one step."""

    __slots__ = ("engine", "event", "now", "profile")

    def __init__(
        self, engine: Engine, profile: Profile, now: int, event: BehaviourEvent | None
    ) -> None:
        super().__init__()
        self.engine = engine
        self.profile = profile
        self.now = now
        self.event = event

    def __missing__(self, name: str) -> Any:
        value = self.engine._readers[name](self.profile, self.now, self.event)
        self[name] = value
        return value


@dataclass(slots=True)
class _Step:
    """One evaluation: an event or a deadline, at one time, with one cause."""

    profile: Profile
    now: int
    cause: str
    values: _Values
    outputs: list[Output] = field(default_factory=list)
    moved: bool = False
    renewed: bool = False  # a tag's expiry was pushed back
    # Whether an event changed what the evaluated rules read: only then does a true
    # condition confirm an expiring tag (its expiry moves, an expired one comes back).
    # Time passing (deadlines) and rule changes (recompute) confirm nothing.
    renews: bool = False
    dues: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # by id(timer)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else format_ts(ms)


def _truth(expression: CompiledExpr, values: _Values) -> bool:
    return expression.evaluate(values) is True


def _event_dict(event: BehaviourEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "type": event.type,
        "ts": event.ts,
        "channel": event.channel,
        "props": event.props,
    }


class Engine:
    """Runs one compiled rule set over profiles. Swap rules by building a new Engine."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.version = rules.version
        read: set[str] = set()
        for tag in rules.tags:
            read |= tag.reads
        for alert in rules.alerts.values():
            read |= alert.reads | set(alert.details)
            if alert.pending:
                read.add(alert.pending)
        for transitions in rules.lifecycle.by_stage.values() if rules.lifecycle else ():
            for transition in transitions:
                read |= transition.when.reads if transition.when else set()
        self._watched = tuple(rules.aggregates[name] for name in sorted(read & rules.time_varying))
        self._on_alerts: dict[str, tuple[AlertRule, ...]] = {}
        self._timer_alerts = tuple(a for a in rules.alerts.values() if a.timer is not None)
        self._pending_alerts = tuple(a for a in rules.alerts.values() if a.pending is not None)
        # Aggregates whose change can move the next deadline: timer anchors and what timer
        # durations read, pending items and day counters. Windows are handled apart: their
        # deadline moves only when their oldest bucket does.
        timers = [a.timer for a in self._timer_alerts if a.timer is not None]
        if rules.lifecycle is not None:
            timers += [t.timer for ts in rules.lifecycle.by_stage.values() for t in ts if t.timer]
        self._deadline_inputs = frozenset(
            {t.anchor for t in timers}.union(*(t.after.reads for t in timers))
            | {a.name for a in self._watched if a.window is None}
        )
        self._windows = tuple(
            (a.name, a.key, a.window) for a in self._watched if a.window is not None
        )
        self._watched_windows = frozenset(name for name, _, _ in self._windows)
        self._clock_watched = tuple(a for a in self._watched if a.window is None)
        self._pending_keys = tuple(a.key for a in rules.aggregates.values() if a.kind is None)
        self._expiring = any(tag.expires_ms is not None for tag in rules.tags)
        alert_timers = tuple(
            (a.timer, "alert:" + a.name) for a in self._timer_alerts if a.timer is not None
        )
        self._timers_in: dict[str | None, tuple[tuple[Timer, str], ...]] = {None: alert_timers}
        for stage, rules_from in (rules.lifecycle.by_stage if rules.lifecycle else {}).items():
            self._timers_in[stage] = alert_timers + tuple(
                (t.timer, t.rule) for t in rules_from if t.timer is not None
            )
        self._tag_rules = frozenset(tag.name for tag in rules.tags)
        self._state_keys = frozenset(a.key for a in rules.aggregates.values())
        self._every_name = frozenset(rules.types) | {"stage"}
        self._families: dict[tuple[str, object], str | None] = {}
        names = ["stage", "event", "lists", *rules.params, *rules.aggregates]
        self._readers: dict[str, Reader] = {name: self._reader(name) for name in names}

    # --- public ---------------------------------------------------------------------------

    def new_profile(self, user_id: str) -> Profile:
        """An empty profile for a user the engine has not seen."""
        return Profile(user_id=user_id)

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
        step = _Step(
            profile, now, cause or f"e:{event.event_id}", _Values(self, profile, now, event)
        )
        step.outputs = outputs
        step.renews = True
        lifecycle = self.rules.lifecycle
        if profile.stage is None and lifecycle is not None:
            self._enter_initial(step, lifecycle.initial)
        before = len(outputs)
        changed, moves_deadline = self._update_aggregates(profile, event, now, skipped)
        if lifecycle is not None:
            self._transitions_on_event(step, event)
        self._evaluate(step, changed | {"stage"} if step.moved else changed)
        for alert in self._alerts_on(event.type):
            if alert.when is None or _truth(alert.when, step.values):
                self._raise(step, alert, {})
        # Recomputing the next deadline is costly; most events (views) cannot move it.
        if moves_deadline or step.renewed or len(outputs) > before:
            profile.due = self._next_deadline(step)
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
        now = profile.clock
        step = _Step(profile, now, f"r:{self.version}", _Values(self, profile, now, None))
        for name, record in list(profile.tags.items()):
            if record.get("rule") not in self._tag_rules:
                why = Reason(str(record.get("rule")), self.version, {}, "rule removed")
                self._remove_tag(step, name, why)
        for key in [key for key in profile.aggs if key not in self._state_keys]:
            del profile.aggs[key]
        for gone in [name for name in profile.alerts_on if name not in self.rules.alerts]:
            del profile.alerts_on[gone]
        lifecycle = self.rules.lifecycle
        if lifecycle is not None and profile.events:
            if profile.stage not in lifecycle.stages:
                # No stage, or one the rules no longer have: start over from the initial.
                self._enter_initial(step, lifecycle.initial, old=profile.stage)
            self._transitions_on_time(step, every_condition=True)
        self._evaluate(step, self._every_name)
        self._timer_alerts_due(step)
        profile.due = self._next_deadline(step)
        return step.outputs

    def value_of(
        self, name: str, profile: Profile, now: int, event: BehaviourEvent | None = None
    ) -> Any:
        """The value an expression sees for ``name`` at ``now``."""
        return self._readers[name](profile, now, event)

    def _reader(self, name: str) -> Reader:
        """How to read one name; built once per name, as this is on every rule's path."""
        if name == "stage":
            return lambda profile, _now, _event: profile.stage
        if name == "event":
            return lambda _profile, _now, event: None if event is None else _event_dict(event)
        if name == "lists":
            lists = self.rules.lists
            return lambda _profile, _now, _event: lists
        if name in self.rules.params:
            param = self.rules.params[name]
            return lambda _profile, _now, _event: param
        aggregate = self.rules.aggregates[name]
        kind, window, limit, key = aggregate.kind, aggregate.window, aggregate.limit, aggregate.key
        if kind is None:  # pending: the items not yet due
            return lambda profile, now, _event: sum(
                1 for item in (profile.aggs.get(key) or {}).values() if item[0] > now
            )
        if window is not None:
            return lambda profile, now, _event: window.value(
                kind, profile.aggs.get(key), now, limit
            )
        result = kind.result
        return lambda profile, now, _event: result(profile.aggs.get(key), now)

    def aggregate_values(self, profile: Profile, now: int | None = None) -> dict[str, Any]:
        """Every declared aggregate's value for a profile (internal timer anchors left out)."""
        at = profile.clock if now is None else now
        return {
            name: self.value_of(name, profile, at)
            for name in self.rules.aggregates
            if not name.startswith("_")
        }

    def describe(self, profile: Profile, now: int | None = None) -> dict[str, Any]:
        """A profile as people and marketing systems read it (JSON-ready): stage, tags with
        why and since when, and aggregate values."""
        stages = self.rules.lifecycle.stages if self.rules.lifecycle else {}
        return {
            "user_id": profile.user_id,
            "stage": profile.stage,
            "stage_display": stages.get(profile.stage or ""),
            "stage_since": _iso(profile.stage_since),
            "tags": {
                name: {
                    "display": record.get("display"),
                    "since": format_ts(record["since"]),
                    "expires": _iso(record.get("expires")),
                    "rule": record.get("rule"),
                    "version": record.get("version"),
                    "when": record.get("when"),
                    "values": record.get("values"),
                }
                for name, record in sorted(profile.tags.items())
            },
            "aggregates": self.aggregate_values(profile, now),
            "events": profile.events,
            "next_deadline": _iso(profile.due),
        }

    # --- events ---------------------------------------------------------------------------

    def _update_aggregates(
        self, profile: Profile, event: BehaviourEvent, now: int, skipped: Counter[str] | None
    ) -> tuple[frozenset[str], bool]:
        """Fold the event in; return the aggregates that changed and whether the next
        deadline may have moved."""
        changed: list[str] = []
        moves_deadline = False
        aggs = profile.aggs
        for aggregate in self.rules.aggregates_for(event.type):
            name, key = aggregate.name, aggregate.key
            if aggregate.kind is None:
                if self._update_pending(profile, aggregate, event):
                    changed.append(name)
                    moves_deadline = True
                continue
            value = None
            if aggregate.extract is not None:
                value = aggregate.extract(event)
                if value is None:
                    continue
                if not aggregate.kind.accepts(value):
                    if skipped is not None:
                        skipped[name] += 1
                    continue
            old = aggs.get(key)
            if aggregate.window is not None:
                oldest = old[0][0] if old else None
                state = aggregate.window.add(
                    aggregate.kind, old, value, event.ts, now, aggregate.limit
                )
                if name in self._watched_windows and (not state or state[0][0] != oldest):
                    moves_deadline = True
            else:
                state = aggregate.kind.add(old, value, event.ts, aggregate.limit)
                if state is old and not aggregate.kind.mutates:
                    continue
            if state is None:
                aggs.pop(key, None)
            else:
                aggs[key] = state
            changed.append(name)
            if name in self._deadline_inputs:
                moves_deadline = True
        return frozenset(changed), moves_deadline

    def _update_pending(
        self, profile: Profile, aggregate: Aggregate, event: BehaviourEvent
    ) -> bool:
        """Open or close an item; True if the set of open items changed."""
        key = value_key(aggregate.extract(event)) if aggregate.extract else None
        if key is None:
            return False
        items: dict[str, list[int]] = profile.aggs.setdefault(aggregate.key, {})
        changed = False
        if aggregate.types is None or event.type in aggregate.types:
            try:
                due = to_epoch_ms(aggregate.due(event) if aggregate.due else None)
            except ValueError:
                due = None  # no usable due time: nothing to remind about
            if due is not None:
                items[key] = [due, 0]
                changed = True
                if len(items) > aggregate.limit:
                    del items[min(items, key=lambda k: items[k][0])]
        if event.type in aggregate.close_types and items.pop(key, None) is not None:
            changed = True
        if not items:
            del profile.aggs[aggregate.key]
        return changed

    def _alerts_on(self, event_type: str) -> tuple[AlertRule, ...]:
        found = self._on_alerts.get(event_type)
        if found is None:
            found = tuple(
                a for a in self.rules.alerts.values() if a.on is not None and event_type in a.on
            )
            self._on_alerts[event_type] = found
        return found

    def _transitions_on_event(self, step: _Step, event: BehaviourEvent) -> None:
        lifecycle = self.rules.lifecycle
        assert lifecycle is not None
        # An `on:` transition is the user's act in the current stage: an event that
        # happened before they entered it (a late purchase from before they went dormant)
        # cannot be that act, even if it arrives now.
        entered = step.profile.stage_since
        happened_before = entered is not None and event.ts < entered
        for rule in lifecycle.by_stage.get(step.profile.stage or "", ()):
            if rule.timer is not None or (rule.on is not None and event.type not in rule.on):
                continue
            if rule.on is not None and happened_before:
                continue
            if rule.when is None or _truth(rule.when, step.values):
                self._move(step, rule, rule.when)
                return

    # --- deadlines ------------------------------------------------------------------------

    def _deadline(self, profile: Profile, now: int, outputs: list[Output]) -> None:
        profile.clock = now
        step = _Step(profile, now, f"t:{now}", _Values(self, profile, now, None), outputs)
        for name, record in list(profile.tags.items()) if self._expiring else ():
            expires = record.get("expires")
            if expires is not None and expires <= now:
                profile.fired[EXPIRED + str(record["rule"])] = 1
                self._remove_tag(
                    step, name, Reason(str(record["rule"]), self.version, {}, "expired")
                )
        if self.rules.lifecycle is not None:
            self._transitions_on_time(step)
        changed = self._changed_by_time(profile, now)
        self._evaluate(step, changed | {"stage"} if step.moved else changed)
        self._timer_alerts_due(step)
        for alert in self._pending_alerts:
            self._pending_reminders(step, alert)
        self._drop_expired_pending(profile, now)
        profile.due = self._next_deadline(step)

    def _changed_by_time(self, profile: Profile, now: int) -> frozenset[str]:
        """The time-varying aggregates whose value moved by ``now``; prunes their windows."""
        changed: list[str] = []
        aggs = profile.aggs
        for name, key, window in self._windows:
            state = aggs.get(key)
            if state is not None and state[0][0] < window.first_bucket(now):
                kept = window.prune(state, now)
                if kept:
                    aggs[key] = kept
                else:
                    del aggs[key]
                changed.append(name)
        for aggregate in self._clock_watched:
            state = aggs.get(aggregate.key)
            if state is None:
                continue
            if aggregate.kind is None:
                if any(item[0] <= now for item in state.values()):
                    changed.append(aggregate.name)
            else:
                changed.append(aggregate.name)  # days_since moves with every day
        return frozenset(changed)

    def _timer_alerts_due(self, step: _Step) -> None:
        """Raise the timer alerts whose time has come (and whose ``when`` holds)."""
        for alert in self._timer_alerts:
            assert alert.timer is not None
            if self._timer_fires(step, alert.timer, "alert:" + alert.name) and (
                alert.when is None or _truth(alert.when, step.values)
            ):
                self._raise(step, alert, {"after": alert.timer.after.source})

    def _transitions_on_time(self, step: _Step, *, every_condition: bool = False) -> None:
        """Take the first transition from the current stage that time has made due: a
        timer, or a ``when`` that reads a time-varying value (with ``every_condition``,
        any ``when``: a rule change may have made it true)."""
        lifecycle = self.rules.lifecycle
        assert lifecycle is not None
        for rule in lifecycle.by_stage.get(step.profile.stage or "", ()):
            if rule.timer is not None:
                if not self._timer_fires(step, rule.timer, rule.rule):
                    continue
                if rule.when is None or _truth(rule.when, step.values):
                    self._move(
                        step,
                        rule,
                        rule.timer.after,
                        note=f"no {self._anchor_types(rule.timer)} for {rule.timer.after.source}",
                    )
                    return
            elif (
                rule.on is None
                and rule.when is not None
                and (every_condition or rule.when.reads & self.rules.time_varying)
                and _truth(rule.when, step.values)
            ):
                self._move(step, rule, rule.when)
                return

    def _anchor_types(self, timer: Timer) -> str:
        return timer.anchor.removeprefix("_last:").replace(",", " or ")

    def _timer_due(self, step: _Step, timer: Timer) -> tuple[int, int] | None:
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
            if (
                isinstance(after, int | float)
                and math.isfinite(after)
                and abs(after) <= MAX_DELAY_MS
            ):
                found = anchor, anchor + int(after)
        step.dues[key] = found
        return found

    def _timer_fires(self, step: _Step, timer: Timer, key: str) -> bool:
        """True once per anchor (the last event it counts from), when its time has come."""
        found = self._timer_due(step, timer)
        if found is None or found[1] > step.now or step.profile.fired.get(key) == found[0]:
            return False
        step.profile.fired[key] = found[0]
        return True

    def _pending_reminders(self, step: _Step, alert: AlertRule) -> None:
        assert alert.pending is not None
        items = step.profile.aggs.get(self.rules.aggregates[alert.pending].key) or {}
        for key, item in sorted(items.items()):
            due, reminded = item
            if not reminded and due - alert.before_ms <= step.now and due > step.now:
                item[1] = 1
                self._raise(step, alert, {"key": key, "due": format_ts(due)}, extra_id=key)

    def _drop_expired_pending(self, profile: Profile, now: int) -> None:
        for key in self._pending_keys:
            items = profile.aggs.get(key)
            if items:
                for item_key in [k for k, item in items.items() if item[0] <= now]:
                    del items[item_key]
                if not items:
                    del profile.aggs[key]

    def _next_deadline(self, step: _Step) -> int | None:
        profile = step.profile
        now = profile.clock
        aggs = profile.aggs
        candidates: list[int] = []
        for _, key, window in self._windows:
            state = aggs.get(key)
            if state is not None:
                # Window.next_change, inlined on this hot path: watched windows are pruned
                # as of now (a bucket leaving is a deadline), so the oldest bucket decides.
                candidates.append((state[0][0] + window.buckets) * window.bucket_ms)
        for aggregate in self._clock_watched:
            state = aggs.get(aggregate.key)
            if state is None:
                continue
            if aggregate.kind is None:
                candidates.extend(item[0] for item in state.values() if item[0] > now)
            else:  # days_since: its value steps once a day
                candidates.append(state + ((now - state) // DAY_MS + 1) * DAY_MS)
        for alert in self._pending_alerts:
            assert alert.pending is not None
            pending = aggs.get(self.rules.aggregates[alert.pending].key) or {}
            for due, reminded in pending.values():
                if not reminded:
                    candidates.append(max(due - alert.before_ms, now))
        if self._expiring:
            candidates.extend(
                record["expires"] for record in profile.tags.values() if record.get("expires")
            )
        fired = profile.fired
        for timer, key in self._timers_in.get(profile.stage) or self._timers_in[None]:
            found = self._timer_due(step, timer)
            if found is not None and fired.get(key) != found[0]:
                candidates.append(max(found[1], now))
        return min(candidates) if candidates else None

    # --- rules ----------------------------------------------------------------------------

    def _evaluate(self, step: _Step, changed: frozenset[str]) -> None:
        affected = self.rules.affected_by(changed)
        for tag in affected.tags:
            if tag.value is not None:
                self._family(step, tag)
            else:
                self._tag(step, tag)
        for group in affected.groups:
            self._group(step, group)
        for alert in affected.alerts:
            assert alert.when is not None
            on = _truth(alert.when, step.values)
            if on and alert.name not in step.profile.alerts_on:
                step.profile.alerts_on[alert.name] = 1
                self._raise(step, alert, {})
            elif not on:
                step.profile.alerts_on.pop(alert.name, None)

    def _holds(self, step: _Step, tag: Tag, held: bool) -> tuple[bool, CompiledExpr]:
        """Whether the tag should be on, and the expression that decided it."""
        if held and tag.exit_when is not None:
            return not _truth(tag.exit_when, step.values), tag.exit_when
        assert tag.when is not None
        return _truth(tag.when, step.values), tag.when

    def _tag(self, step: _Step, tag: Tag) -> None:
        record = step.profile.tags.get(tag.name)
        on, decider = self._holds(step, tag, record is not None)
        latch = EXPIRED + tag.name
        if not on:
            step.profile.fired.pop(latch, None)
            if record is not None:
                self._remove_tag(step, tag.name, self._reason(tag.name, decider, step.values))
        elif record is None:
            if step.renews:
                step.profile.fired.pop(latch, None)  # an event confirmed it anew
            if latch not in step.profile.fired:
                self._add_tag(step, tag, tag.name, tag.display, decider)
        elif tag.expires_ms is not None and step.renews:
            record["expires"] = step.now + tag.expires_ms
            step.renewed = True

    def _group(self, step: _Step, group: str) -> None:
        members = self.rules.groups[group]
        fired = step.profile.fired
        held = next((m for m in members if m.name in step.profile.tags), None)
        held_decider: CompiledExpr | None = None
        winner: tuple[Tag, CompiledExpr] | None = None
        for member in members:
            if winner is not None and member is not held and member.expires_ms is None:
                continue  # decided; only expiring tags have latches left to clear
            on, decider = self._holds(step, member, member is held)
            if member is held:
                held_decider = decider
            if member.expires_ms is not None and (not on or step.renews):
                fired.pop(EXPIRED + member.name, None)
            if on and winner is None and EXPIRED + member.name not in fired:
                winner = (member, decider)
        if held is not None and (winner is None or winner[0] is not held):
            assert held_decider is not None
            reason = self._reason(held.name, held_decider, step.values)
            if winner is not None:
                reason = Reason(
                    reason.rule,
                    reason.version,
                    reason.values,
                    f"group {group}: now {winner[0].name}",
                )
            self._remove_tag(step, held.name, reason)
        if winner is not None and winner[0] is not held:
            self._add_tag(step, winner[0], winner[0].name, winner[0].display, winner[1])
        elif winner is not None and held is not None and held.expires_ms and step.renews:
            step.profile.tags[held.name]["expires"] = step.now + held.expires_ms
            step.renewed = True

    def _family(self, step: _Step, tag: Tag) -> None:
        assert tag.value is not None
        value = tag.value.evaluate(step.values)
        if tag.values is not None and value not in tag.values:
            value = None
        cache_key = (tag.name, value)
        try:
            target = self._families[cache_key]
        except KeyError:
            target = family_member(tag.name, value)
            if len(self._families) < MAX_CACHED_FAMILY_NAMES:
                self._families[cache_key] = target
        except TypeError:  # an unhashable value
            target = family_member(tag.name, value)
        current = next(
            (name for name, record in step.profile.tags.items() if record["rule"] == tag.name), None
        )
        if tag.expires_ms is not None:
            latch = EXPIRED + tag.name
            if step.renews:
                step.profile.fired.pop(latch, None)  # an event confirmed it anew
                if target is not None and target == current:
                    step.profile.tags[current]["expires"] = step.now + tag.expires_ms
                    step.renewed = True
            elif current is None and latch in step.profile.fired:
                return  # expired: only an event brings it back
        if target == current:
            return
        if current is not None:
            self._remove_tag(step, current, self._reason(tag.name, tag.value, step.values))
        if target is not None:
            display = f"{tag.display}: {value}" if tag.display else str(value)
            self._add_tag(step, tag, target, display, tag.value)

    def _add_tag(
        self, step: _Step, tag: Tag, name: str, display: str | None, decider: CompiledExpr
    ) -> None:
        reason = self._reason(tag.name, decider, step.values)
        step.profile.tags[name] = {
            "since": step.now,
            "expires": None if tag.expires_ms is None else step.now + tag.expires_ms,
            "rule": tag.name,
            "display": display,
            "version": self.version,
            "values": reason.values,
            "when": decider.source,
        }
        step.outputs.append(
            TagChange(
                output_id(step.profile.user_id, step.cause, self.version, "tag", name, "add"),
                step.profile.user_id,
                name,
                "add",
                display,
                step.now,
                reason,
            )
        )

    def _remove_tag(self, step: _Step, name: str, reason: Reason) -> None:
        record = step.profile.tags.pop(name)
        step.outputs.append(
            TagChange(
                output_id(step.profile.user_id, step.cause, self.version, "tag", name, "remove"),
                step.profile.user_id,
                name,
                "remove",
                record.get("display"),
                step.now,
                reason,
            )
        )

    def _enter_initial(self, step: _Step, initial: str, old: str | None = None) -> None:
        profile = step.profile
        profile.stage = initial
        profile.stage_since = step.now
        step.values["stage"] = initial
        note = "first event" if old is None else "stage removed from the rules"
        reason = Reason("lifecycle.initial", self.version, {}, note)
        step.outputs.append(
            Transition(
                output_id(profile.user_id, step.cause, self.version, "transition", "initial"),
                profile.user_id,
                old,
                initial,
                step.now,
                reason,
            )
        )

    def _move(
        self, step: _Step, rule: TransitionRule, decider: CompiledExpr | None, note: str = ""
    ) -> None:
        profile = step.profile
        old = profile.stage
        values = {} if decider is None else self._reason(rule.rule, decider, step.values).values
        reason = Reason(rule.rule, self.version, values, note)
        profile.stage = rule.to
        profile.stage_since = step.now
        step.values["stage"] = rule.to
        step.moved = True
        step.outputs.append(
            Transition(
                output_id(profile.user_id, step.cause, self.version, "transition", rule.rule),
                profile.user_id,
                old,
                rule.to,
                step.now,
                reason,
            )
        )
        if rule.alert is not None:
            self._raise(
                step, self.rules.alerts[rule.alert], {"from": old, "to": rule.to}, reason=reason
            )

    def _raise(
        self,
        step: _Step,
        alert: AlertRule,
        extra: dict[str, Any],
        *,
        extra_id: str = "",
        reason: Reason | None = None,
    ) -> None:
        details = {name: step.values[name] for name in alert.details} | extra
        if reason is None:
            reason = (
                self._reason(alert.name, alert.when, step.values)
                if alert.when is not None
                else Reason(alert.name, self.version, {})
            )
        step.outputs.append(
            Alert(
                output_id(
                    step.profile.user_id, step.cause, self.version, "alert", alert.name, extra_id
                ),
                step.profile.user_id,
                alert.name,
                alert.severity,
                alert.display,
                step.now,
                details,
                reason,
            )
        )

    def _reason(self, rule: str, decider: CompiledExpr, values: _Values) -> Reason:
        read = {n: values[n] for n in sorted(decider.reads) if n not in ("event", "lists")}
        return Reason(rule, self.version, read, decider.source)

"""The rule set's compiler: the lifecycle, tags and alerts over the sections below them,
then the rule set, with every problem collected instead of stopping at one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from taggers.expr import BOOL, DYN, STRING, TIMESTAMP, CompiledExpr, list_of
from taggers.expr.checked import article
from taggers.expr.types import assignable
from taggers.rulefile import AlertSpec, TagSpec, TransitionSpec
from taggers.ruleset.calendars import CalendarsCompiler
from taggers.ruleset.model import NOW, Alert, Lifecycle, RuleSet, Tag, Transition
from taggers.yaml_source import Path_, Position, RuleSetError, SourceMap


class RuleSetCompiler(CalendarsCompiler):
    """Compiles merged rule files, collecting every problem instead of stopping at one:
    the lifecycle, tags and alerts over the sections below them, then the rule set."""

    def compile_lifecycle(self) -> Lifecycle | None:
        found = [(f.lifecycle, s) for f, s in self.files if f.lifecycle is not None]
        if not found:
            return None
        (spec, source), *others = found
        for _, other in others:
            self.problem(
                other.key(("lifecycle",)),
                "lifecycle is defined in more than one file",
                f"keep one; the first is at {source.key(('lifecycle',))}",
            )
        stages = dict(spec.stages)
        self.names["stage"] = STRING
        if spec.initial not in stages:
            self.stage_problem(spec.initial, stages, source.at(("lifecycle", "initial")))
        reached = {spec.initial}
        by_stage: dict[str, list[Transition]] = {stage: [] for stage in stages}
        for index, step in enumerate(spec.transitions):
            path: Path_ = ("lifecycle", "transitions", index)
            transition = self.transition(step, index, stages, source, path)
            if transition is None:
                continue
            reached.add(transition.to)
            for stage in sorted(transition.sources):
                by_stage[stage].append(transition)
        for stage in stages:
            if stage not in reached:
                self.problem(
                    source.key(("lifecycle", "stages", stage)),
                    f"stage {stage!r} is unreachable: no transition leads to it",
                    "add a transition with `to: " + stage + "` or remove the stage",
                )
        return Lifecycle(spec.initial, stages, {k: tuple(v) for k, v in by_stage.items()})

    def stage_problem(self, name: str, stages: Mapping[str, object], where: Position) -> None:
        close = difflib.get_close_matches(name, stages, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "stages are: " + ", ".join(stages)
        self.problem(where, f"unknown stage {name!r}", hint)

    def transition(
        self,
        step: TransitionSpec,
        index: int,
        stages: Mapping[str, object],
        source: SourceMap,
        path: Path_,
    ) -> Transition | None:
        sources = [step.from_] if isinstance(step.from_, str) else step.from_
        ok = True
        for i, stage in enumerate(sources):
            if stage not in stages:
                where = source.at(
                    (*path, "from") if isinstance(step.from_, str) else (*path, "from", i)
                )
                self.stage_problem(stage, stages, where)
                ok = False
        if step.to not in stages:
            self.stage_problem(step.to, stages, source.at((*path, "to")))
            ok = False
        on = None if step.upon is None else self.event_types(step.upon, source.at((*path, "upon")))
        when = None
        if step.when is not None:
            when = self.expression(
                step.when, source, (*path, "when"), expect=BOOL, with_event=step.upon is not None
            )
            ok = ok and when is not None
        timer = self.timer(step.since, step.after, source, path)
        if step.since is not None and timer is None:
            ok = False
        if step.alert is not None:
            self.transition_alerts.append((step.alert, source.at((*path, "alert"))))
        if not ok:
            return None
        rule = f"lifecycle.{'+'.join(sources)}->{step.to}#{index + 1}"
        return Transition(rule, frozenset(sources), step.to, when, on, timer, step.alert)

    def compile_tags(self) -> tuple[Tag, ...]:
        tags: list[Tag] = []
        for rule_file, source in self.files:
            for name, spec in rule_file.tags.items():
                path: Path_ = ("tags", name)
                if self.declare("tag", name, source, path):
                    tag = self.tag(name, spec, source, path)
                    if tag is not None:
                        tags.append(tag)
        return tuple(tags)

    def tag(self, name: str, spec: TagSpec, source: SourceMap, path: Path_) -> Tag | None:
        when = exit_when = value = None
        if spec.when is not None:
            when = self.expression(spec.when, source, (*path, "when"), expect=BOOL)
            if when is None:
                return None
        if spec.exit_when is not None:
            exit_when = self.expression(spec.exit_when, source, (*path, "exit_when"), expect=BOOL)
            if exit_when is None:
                return None
        if spec.value is not None:
            value = self.family_value(spec.value, source, (*path, "value"))
            if value is None:
                return None
        expires = None
        if spec.expires_after is not None:
            expires = self.duration(spec.expires_after, source.at((*path, "expires_after")))
            if expires is None:
                return None
        reads = frozenset().union(*(e.reads for e in (when, exit_when, value) if e is not None))
        values = None if spec.values is None else frozenset(spec.values)
        return Tag(name, spec.display, when, exit_when, value, values, spec.group, expires, reads)

    def family_value(self, text: str, source: SourceMap, path: Path_) -> CompiledExpr | None:
        """A family's ``value:``: a string (one member at a time) or a list of strings
        (a member per item)."""
        value = self.expression(text, source, path, expect=None)
        if value is None:
            return None
        if not (assignable(value.type, STRING) or assignable(value.type, list_of(STRING))):
            self.problem(
                source.at(path).offset(text, 0),
                f"a family's value is a string or a list of strings, not {article(value.type)}",
                "e.g. value: top_category_30d, or value: keys_at_least(orders_by_category, 2)",
            )
            return None
        return value

    def compile_alerts(self) -> dict[str, Alert]:
        alerts: dict[str, Alert] = {}
        for rule_file, source in self.files:
            for name, spec in rule_file.alerts.items():
                path: Path_ = ("alerts", name)
                if self.declare("alert", name, source, path):
                    alert = self.alert(name, spec, source, path)
                    if alert is not None:
                        alerts[name] = alert
        return alerts

    def alert(self, name: str, spec: AlertSpec, source: SourceMap, path: Path_) -> Alert | None:
        on = None if spec.upon is None else self.event_types(spec.upon, source.at((*path, "upon")))
        when = None
        if spec.when is not None:
            when = self.expression(
                spec.when, source, (*path, "when"), expect=BOOL, with_event=spec.upon is not None
            )
            if when is None:
                return None
        timer = self.timer(spec.since, spec.after, source, path)
        if spec.since is not None and timer is None:
            return None
        calendar = None
        if spec.calendar is not None:
            calendar = self.calendar(spec.calendar, source, (*path, "calendar"))
            if calendar is None:
                return None
        before_ms = 0
        if spec.pending is not None:
            target = self.aggregates.get(spec.pending)
            if target is None or target.kind_name != "pending":
                self.problem(
                    source.at((*path, "pending")),
                    f"{spec.pending!r} is not a pending aggregate",
                    "declare it under aggregates with `pending: props.<key>`",
                )
                return None
            before_ms = self.duration(spec.before or "", source.at((*path, "before"))) or 0
        details = self.details(spec, source, path)
        reads = frozenset() if when is None else when.reads
        if calendar is not None and calendar.yearly is not None:
            reads |= {calendar.yearly}
        return Alert(
            name,
            spec.severity,
            spec.display,
            when,
            on,
            timer,
            spec.pending,
            before_ms,
            details,
            reads,
            calendar,
        )

    def details(
        self, spec: AlertSpec, source: SourceMap, path: Path_
    ) -> tuple[tuple[str, CompiledExpr], ...]:
        """An alert's details, each a name and the expression it shows: a detail written
        as a name shows that value; ``name: "expression"`` may read what ``when`` reads."""
        found: list[tuple[str, CompiledExpr]] = []
        for i, detail in enumerate(spec.details):
            at: Path_ = (*path, "details", i)
            if isinstance(detail, str):
                if detail not in self.names or detail == "lists":
                    close = difflib.get_close_matches(detail, self.names, n=1)
                    self.problem(
                        source.at(at),
                        f"unknown name {detail!r}",
                        f"did you mean {close[0]!r}?"
                        if close
                        else 'details name values, or give one an expression: - next: "orders + 1"',
                    )
                    continue
                name, text = detail, detail
            else:
                ((name, text),) = detail.items()
                at = (*at, name)
            compiled = self.expression(
                text, source, at, expect=DYN, with_event=spec.upon is not None
            )
            if compiled is not None:
                found.append((name, compiled))
        return tuple(found)

    def compile(self, version: str) -> RuleSet:
        self.compile_timezone()
        self.names[NOW] = TIMESTAMP
        self.compile_params()
        self.compile_lists()
        self.compile_aggregates()
        lifecycle = self.compile_lifecycle()
        tags = self.compile_tags()
        alerts = self.compile_alerts()
        for alert_name, where in self.transition_alerts:
            alert = alerts.get(alert_name)
            if alert is None:
                close = difflib.get_close_matches(alert_name, alerts, n=1)
                self.problem(
                    where,
                    f"unknown alert {alert_name!r}",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "declare it under alerts with a severity and no trigger",
                )
            elif not alert.raised_by_transition:
                self.problem(
                    where,
                    f"alert {alert_name!r} has its own trigger",
                    "an alert raised by a transition declares only severity/display",
                )
        if self.problems:
            raise RuleSetError(self.problems)
        groups: dict[str, list[Tag]] = {}
        for tag in tags:
            if tag.group is not None:
                groups.setdefault(tag.group, []).append(tag)
        time_varying = frozenset(n for n, a in self.aggregates.items() if a.time_varying)
        return RuleSet(
            version=version,
            directory=str(self.directory),
            aggregates=self.aggregates,
            tags=tags,
            groups={k: tuple(v) for k, v in groups.items()},
            lifecycle=lifecycle,
            alerts=alerts,
            lists=self.lists,
            params=self.params,
            time_varying=time_varying,
            types=dict(self.names),
            declared_at={n: at for (section, n), at in self.seen.items() if section == "aggregate"},
            days=self.days,
        )

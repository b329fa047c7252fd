"""Compiling aggregates as their kinds declare (``taggers.aggregates.KINDS``): filters,
keys and net sums, and the timers that count from the last event of some types.
"""

from __future__ import annotations

import hashlib
import json
from collections import ChainMap
from dataclasses import replace
from typing import Any, Final

from taggers.aggregates import (
    DEFAULT_KEYS,
    KINDS,
    MAX_BUCKETS,
    OPTIONS,
    Kind,
    Window,
    keyed,
    takes_keys,
    value_key,
)
from taggers.aggregates import bucket_size as _bucket_size
from taggers.durations import DAY_MS
from taggers.events import BehaviourEvent
from taggers.expr import BOOL, DURATION, STRING, TIMESTAMP, CompiledExpr, Type, map_of
from taggers.rulefile import AggregateSpec
from taggers.ruleset.base import ConstantsCompiler, said
from taggers.ruleset.model import (
    ANY,
    EVENT_FIELDS,
    STRING_FIELDS,
    Aggregate,
    Extractor,
    Filter,
    Timer,
    field_extractor,
)
from taggers.yaml_source import Path_, Position, SourceMap


class AggregatesCompiler(ConstantsCompiler):
    """Aggregates, as their kinds declare (``taggers.aggregates.KINDS``), and the timers
    that count from the last event of some types."""

    def compile_aggregates(self) -> None:
        for rule_file, source in self.files:
            for name, spec in rule_file.aggregates.items():
                path: Path_ = ("aggregates", name)
                if self.declare("aggregate", name, source, path):
                    aggregate = self.aggregate(name, spec, source, path)
                    if aggregate is not None:
                        aggregate = _identified(aggregate, spec)
                        self.aggregates[name] = aggregate
                        self.names[name] = aggregate.value_type

    def aggregate(
        self, name: str, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> Aggregate | None:
        """Compile one aggregate as its kind's declaration (``KINDS``) says."""
        kind = KINDS[spec.kind]
        fed = self.feeds(kind, spec, source, path)
        if fed is None:
            return None
        types, extract, value_type = fed
        window = None
        if spec.window is not None:
            window = self.window(spec.window, kind, source.at((*path, "window")))
        options = self.options(kind, spec, source, path)
        if options is None:
            return None
        close, due, minus = options
        for option in kind.options:
            if option.adjust is not None and getattr(spec, option.name) is not None:
                kind = option.adjust(kind)
        if minus:
            extract = _negated(extract, minus)
        admits = None
        if spec.where is not None:
            admits = self.event_filter(spec.where, source, (*path, "where"))
            if admits is None:
                return None
        if spec.by is not None or spec.keys is not None:
            found = self.by_key(kind, spec, extract, source, path)
            if found is None:
                return None
            kind, extract = found
            value_type = map_of(value_type)
        limit = spec.limit or KINDS[spec.kind].default_limit
        return Aggregate(
            name,
            spec.kind,
            kind,
            types,
            extract,
            window,
            limit,
            value_type,
            close,
            due,
            minus_types=minus,
            where=admits,
        )

    def feeds(
        self, kind: Kind, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> tuple[frozenset[str] | None, Extractor | None, Type] | None:
        """The event types that feed an aggregate, the field it reads and its value type."""
        target = getattr(spec, kind.name)
        where = source.at((*path, kind.name))
        if kind.shape == "types":
            if spec.of is not None:
                self.problem(
                    source.key((*path, "of")),
                    f"{kind.name} names its event types itself",
                    f"write {kind.name}: {spec.of}",
                )
            return self.event_types(target, where), None, kind.result_type
        extract = field_extractor(target)
        if extract is None:
            self.problem(where, f"unknown event field {target!r}", _FIELDS_HINT)
            return None
        value_type = STRING if target in STRING_FIELDS and kind.typed_by_field else kind.result_type
        types = None if spec.of is None else self.event_types(spec.of, source.at((*path, "of")))
        return types, extract, value_type

    def options(
        self, kind: Kind, spec: AggregateSpec, source: SourceMap, path: Path_
    ) -> tuple[frozenset[str], Extractor | None, frozenset[str]] | None:
        """The close types, due field and minus types of a kind that takes them; None on
        a problem."""
        for option in OPTIONS.values():
            if option not in kind.options and getattr(spec, option.name) is not None:
                takers = said([k.name for k in KINDS.values() if option in k.options])
                self.problem(
                    source.key((*path, option.name)), f"'{option.name}' only goes with {takers}"
                )
        missing = [key for key in kind.requires if getattr(spec, key) is None]
        if missing:
            self.problem(
                source.key(path),
                f"{kind.name} needs {said([repr(key) for key in kind.requires])}",
                kind.example.strip("{}"),
            )
            return None
        takes = {option.name for option in kind.options}
        due: Extractor | None = None
        if spec.due is not None and "due" in takes:
            due = field_extractor(spec.due)
            if due is None:
                self.problem(source.at((*path, "due")), f"unknown event field {spec.due!r}")
                return None
        close: frozenset[str] = frozenset()
        if spec.close is not None and "close" in takes:
            close = self.event_types(spec.close, source.at((*path, "close"))) or frozenset()
        minus: frozenset[str] = frozenset()
        if spec.minus is not None and "minus" in takes:
            minus = self.minus_types(spec, source, path)
        return close, due, minus

    def minus_types(self, spec: AggregateSpec, source: SourceMap, path: Path_) -> frozenset[str]:
        """A sum's ``minus`` types: named ones (not every event), none of them in ``of``."""
        assert spec.minus is not None
        where = source.at((*path, "minus"))
        minus = self.event_types(spec.minus, where)
        if minus is None:
            self.problem(where, "minus names event types, not '*'", "e.g. minus: refund")
            return frozenset()
        of = None if spec.of is None else frozenset(_listed(spec.of))
        if of is not None and ANY in of:
            of = None
        both = sorted(minus & of) if of is not None else []
        if of is None or both:
            self.problem(
                where,
                "an event type is added or subtracted, not both: "
                + (f"{said(both)} is in 'of' too" if both else "give 'of' its types"),
                "e.g. {sum: props.amount, of: purchase, minus: refund}",
            )
        return minus

    def event_filter(self, text: str, source: SourceMap, path: Path_) -> Filter | None:
        """An aggregate's ``where:``: a condition over the event's fields, params and lists."""
        names = ChainMap(EVENT_FIELDS, {name: self.names[name] for name in self.constants})
        compiled = self.expression(
            text, source, path, expect=BOOL, names=names, unknown=self.filter_hint
        )
        return None if compiled is None else _event_filter(compiled)

    def filter_hint(self, name: str) -> str | None:
        """Why a filter cannot read ``name``, if it is a name other rules read."""
        if name == "event":
            return "a filter reads the event's fields as names: props.amount, channel, type"
        declared = {n for rule_file, _ in self.files for n in rule_file.aggregates}
        if name == "stage" or name in declared:
            what = "the stage" if name == "stage" else f"aggregate {name!r}"
            return (
                f"a filter decides which events feed the aggregate, before any rule runs:"
                f" it reads the event, params and lists, not {what}"
            )
        return None

    def by_key(
        self,
        kind: Kind,
        spec: AggregateSpec,
        extract: Extractor | None,
        source: SourceMap,
        path: Path_,
    ) -> tuple[Kind, Extractor] | None:
        """The keyed kind (``by:``) and the extractor of (key, value) pairs it folds."""
        if spec.by is None:
            self.problem(source.key((*path, "keys")), "'keys' goes with 'by'", "by: props.category")
            return None
        if not takes_keys(kind):
            takers = said([k.name for k in KINDS.values() if takes_keys(k)])
            self.problem(
                source.key((*path, "by")),
                f"{kind.name} cannot be kept per key",
                f"'by' goes with {takers}",
            )
            return None
        key_of = field_extractor(spec.by)
        if key_of is None:
            self.problem(source.at((*path, "by")), f"unknown event field {spec.by!r}", _FIELDS_HINT)
            return None
        return keyed(kind, spec.keys or DEFAULT_KEYS), _keyed_extractor(key_of, extract)

    def window(self, text: str, kind: Kind, where: Position) -> Window | None:
        window_ms = self.duration(text, where)
        if window_ms is None:
            return None
        if not kind.windowable:
            timed = said([k.name for k in KINDS.values() if not k.windowable])
            self.problem(
                where, f"{kind.name} cannot have a window", f"{timed} already depend on time"
            )
            return None
        size = _bucket_size(window_ms)
        if window_ms % size or window_ms // size > MAX_BUCKETS:
            self.problem(
                where,
                f"window {text} is not supported",
                f"use whole hours up to {MAX_BUCKETS}h or whole days up to {MAX_BUCKETS}d",
            )
            return None
        # Day buckets are the rule set's local days; UTC's are plain arithmetic.
        days = None if size != DAY_MS or self.days.fixed == 0 else self.days
        return Window(window_ms, size, days)

    def anchor(self, since: str | list[str], where: Position) -> str:
        """The internal last-seen aggregate a timer counts from (created once per type set)."""
        types = self.event_types(since, where)
        name = "_last:" + (",".join(sorted(types)) if types else ANY)
        self.seen.setdefault(("aggregate", name), where)  # the first rule counting from it
        if name not in self.aggregates:
            # The name says all there is to it: it is its own key.
            self.aggregates[name] = Aggregate(
                name, "last_ts", KINDS["last_ts"], types, None, None, 1, TIMESTAMP, key=name
            )
        return name

    def timer(
        self, since: str | list[str] | None, after: str | None, source: SourceMap, path: Path_
    ) -> Timer | None:
        if since is None or after is None:
            return None
        anchor = self.anchor(since, source.at((*path, "since")))
        compiled = self.expression(after, source, (*path, "after"), expect=DURATION)
        return None if compiled is None else Timer(anchor, compiled)


_FIELDS_HINT: Final = "fields are channel, type, ts, event_id, user_id or props.<name>"


def _listed(types: str | list[str]) -> list[str]:
    return [types] if isinstance(types, str) else types


def _negated(extract: Extractor | None, minus: frozenset[str]) -> Extractor | None:
    """The values of ``minus`` events, subtracted: folded in negated."""
    if extract is None:
        return None
    inner = extract

    def signed(event: BehaviourEvent) -> Any:
        value = inner(event)
        if event.type in minus and isinstance(value, int | float) and not isinstance(value, bool):
            return -value
        return value

    return signed


def _keyed_extractor(key_of: Extractor, extract: Extractor | None) -> Extractor:
    """(key, value) of an event for a keyed aggregate; None when either is missing."""

    def pair(event: BehaviourEvent) -> Any:
        key = value_key(key_of(event))
        if key is None:
            return None
        if extract is None:
            return key, None
        value = extract(event)
        return None if value is None else (key, value)

    return pair


def _event_filter(compiled: CompiledExpr) -> Filter:
    evaluate = compiled.evaluate

    def admits(event: BehaviourEvent) -> bool:
        fields = {
            "props": event.props,
            "channel": event.channel,
            "type": event.type,
            "ts": event.ts,
            "event_id": event.event_id,
            "user_id": event.user_id,
        }
        return evaluate(fields) is True

    return admits


def _identified(aggregate: Aggregate, spec: AggregateSpec) -> Aggregate:
    definition = json.dumps(
        spec.model_dump(exclude={"description"}, exclude_none=True), sort_keys=True
    )
    digest = hashlib.blake2b(definition.encode(), digest_size=3).hexdigest()
    return replace(aggregate, key=f"{aggregate.name}@{digest}")

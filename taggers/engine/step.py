"""One evaluation step (an event or a deadline, at one time, with one cause) and the
values its rules read, each computed on first use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taggers.display import json_values
from taggers.engine.reading import Reader
from taggers.events import BehaviourEvent
from taggers.expr import CompiledExpr, Type
from taggers.outputs import Output, Reason
from taggers.profile import Profile


class Values(dict[str, Any]):
    """Values that expressions read, computed on first use and kept for one step."""

    __slots__ = ("event", "now", "profile", "readers")

    def __init__(
        self,
        readers: dict[str, Reader],
        profile: Profile,
        now: int,
        event: BehaviourEvent | None,
    ) -> None:
        super().__init__()
        self.readers = readers
        self.profile = profile
        self.now = now
        self.event = event

    def __missing__(self, name: str) -> Any:
        value = self.readers[name](self.profile, self.now, self.event)
        self[name] = value
        return value


@dataclass(slots=True)
class Step:
    """One evaluation: an event or a deadline, at one time, with one cause."""

    profile: Profile
    now: int
    cause: str
    values: Values
    version: str
    outputs: list[Output] = field(default_factory=list)
    moved: bool = False
    renewed: bool = False  # a tag's expiry was pushed back
    # Whether an event changed what the evaluated rules read: only then does a true
    # condition confirm an expiring tag (its expiry moves, an expired one comes back).
    # Time passing (deadlines) and rule changes (recompute) confirm nothing.
    renews: bool = False
    dues: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # by id(timer)
    types: Mapping[str, Type] = field(default_factory=dict)  # of the names rules read

    @property
    def person_id(self) -> str:
        """The person whose profile this step changes (outputs' ``person_id``)."""
        return self.profile.user_id

    @property
    def came_under(self) -> str:
        """The id the step's event came under (a linked id of the person, or the person's
        own); for a deadline, the person's id. Outputs' ``user_id``."""
        event = self.values.event
        return self.profile.user_id if event is None else event.user_id

    @property
    def opted_out(self) -> bool:
        """Whether the person has opted out of marketing (their latest consent event)."""
        return self.profile.opted_out


def truth(expression: CompiledExpr, values: Values) -> bool:
    """Whether a condition holds (null and errors are not true)."""
    return expression.evaluate(values) is True


def reason(step: Step, rule: str, decider: CompiledExpr) -> Reason:
    """Why a rule decided: the values its expression read (not the event or the lists), in
    their JSON form (timestamps as ISO-8601, doubles to cents)."""
    values = step.values
    read = {n: values[n] for n in sorted(decider.reads) if n not in ("event", "lists")}
    return Reason(rule, step.version, json_values(read, step.types), decider.source)

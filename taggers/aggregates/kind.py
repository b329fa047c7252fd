"""What an aggregate kind declares: one ``Kind`` per kind, in the module of its family.

A kind says everything the rest of the core needs to know about it, in one place: how a
rule file writes it (``shape``, extra ``options`` and the keys it ``requires``), the
type rules read (``result_type``), its default ``limit``, whether it takes a window, how
its value moves with time alone (``time``), and its fold and read functions. The rule
file model, the compiler and the engine read these declarations; none keeps a table of
kinds of its own (``taggers.aggregates.KINDS`` is the registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from taggers.expr import Type

if TYPE_CHECKING:
    from taggers.events import BehaviourEvent

State = Any
Value = Any
Shape = Literal["types", "field"]
"""``types``: written ``kind: event_type(s)``; ``field``: ``kind: field`` with ``of:`` types."""

DEFAULT_LIMIT: Final = 1000


class Source(Protocol):
    """What a kind that folds whole events reads of its compiled aggregate."""

    @property
    def types(self) -> frozenset[str] | None: ...
    @property
    def close_types(self) -> frozenset[str]: ...
    @property
    def extract(self) -> Callable[[BehaviourEvent], Any] | None: ...
    @property
    def due(self) -> Callable[[BehaviourEvent], Any] | None: ...
    @property
    def limit(self) -> int: ...


EventFold = Callable[[Source, State, "BehaviourEvent"], tuple[State, bool]]
"""``(aggregate, state, event) -> (state, changed)`` for kinds that are not monoids."""


@dataclass(frozen=True, slots=True)
class Option:
    """A rule-file key that some kinds take besides their own (pending's ``close``).

    ``adjust``: how the kind reads when the option is given (a sum with ``minus`` is
    never read below zero), or None when the option changes only what is folded.
    """

    name: str
    form: Shape  # event types, or an event field
    description: str
    adjust: Callable[[Kind], Kind] | None = None


@dataclass(frozen=True, slots=True)
class Ticks:
    """How a kind's (unwindowed) value changes with time alone, with no event.

    ``moved(state, now)``: whether the value may have changed by ``now`` (checked at each
    deadline); ``next_change(state, now)``: the next time after ``now`` it changes, or
    None; ``expire(state, now)``: the state with what time has closed dropped (None when
    nothing is left), applied after a deadline's rules ran.
    """

    moved: Callable[[State, int], bool]
    next_change: Callable[[State, int], int | None]
    expire: Callable[[State, int], State] | None = None


@dataclass(frozen=True, slots=True)
class Kind:
    """One aggregate kind: its rule-file shape, result type, limit, window and time
    behaviour, and how it folds observations in, merges partials and reads a value.

    ``add(state, value, ts, limit)`` returns the new state; kinds that ``mutate`` change a
    list/dict state in place, the others return the very same state when nothing changed
    (which lets the engine skip rules whose inputs did not move). ``merge(states,
    limit)`` combines states: a window's buckets when read, and the states of two
    profiles of one person when they merge (``taggers.engine.merging``), so that the
    merged state reads as both histories folded as one; in the order given, a later
    state counts as later at equal event times. Every kind merges (pending too, item by
    item). ``result(state, now)`` turns a merged partial into the value rules read.
    ``counts``: its states are positive ints that merge by adding up (``count``), which
    lets a keyed window add each key's partials as it reads them (an exact sum).
    ``accepts(value)`` says whether a value can be folded in (a sum takes numbers only);
    the engine counts the values it skips. A kind that is not a monoid of one value
    (``pending`` opens and closes items) folds whole events with ``fold_event`` instead,
    and is not windowable.
    """

    name: str
    shape: Shape
    result_type: Type
    add: Callable[[State, Value, int, int], State]
    merge: Callable[[list[State], int], State]
    result: Callable[[State, int], Value]
    example: str  # how a rule file writes it, as in docs/rules.md
    windowable: bool = True
    default_limit: int = DEFAULT_LIMIT
    time: Ticks | None = None
    mutates: bool = False
    counts: bool = False
    accepts: Callable[[Value], bool] = lambda _value: True
    # first/last: the value is one of the field's own, so a string field gives a string
    typed_by_field: bool = False
    options: tuple[Option, ...] = ()
    requires: tuple[str, ...] = ()  # rule-file keys it cannot do without
    fold_event: EventFold | None = None
    description: str | None = None  # of its rule-file key, in the JSON Schema

    @property
    def clock_dependent(self) -> bool:
        """Whether the value changes with time alone, unwindowed (days_since, pending)."""
        return self.time is not None


def same_state(state: State, _now: int) -> Value:
    """The result of kinds whose state is their value (min, max, last_ts)."""
    return state


def not_a_monoid(*_args: Any) -> State:
    """``add`` of a kind that folds whole events (``fold_event``)."""
    raise TypeError("this kind folds whole events: use its fold_event")

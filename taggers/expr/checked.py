"""What the type checkers of the expression language share: a checked part of a syntax tree
(its type, its evaluation function, whether it is constant), the compile step they recurse
through, and how their messages name types and places.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Final, Protocol

from taggers.expr.parser import Binary, Call, Conditional, ExprError, Index, Macro, Member, Node
from taggers.expr.types import BOOL, DYN, NULL, Type

Values = Mapping[str, Any]
"""What an expression reads at run time: the values of its non-constant names."""
Fn = Callable[[Values], Any]
"""An evaluation function: never raises (see ``runtime``)."""

_CONDITION: Final = (BOOL, DYN, NULL)


@dataclass(frozen=True, slots=True)
class Checked:
    """A type-checked, compiled node: its type and evaluation function; ``const`` when
    it reads no run-time value, so that it is evaluated once, at compile time."""

    type: Type
    fn: Fn
    const: bool = False


class Compile(Protocol):
    """Type-check and compile a node (the compiler's entry, which records the names read).

    ``zone`` is the rule set's time zone: the date functions (``taggers.expr.dates``)
    read local dates in it, decided when the expression is compiled."""

    @property
    def zone(self) -> tzinfo: ...

    def __call__(self, node: Node, /) -> Checked: ...


def constant(type_: Type, value: Any) -> Checked:
    """A constant of type ``type_``."""
    return Checked(type_, lambda _values: value, const=True)


def condition(compile_: Callable[[Node], Checked], node: Node) -> Checked:
    """Compile ``node`` where true or false is wanted."""
    out = compile_(node)
    if out.type not in _CONDITION:
        raise ExprError(
            f"expected true or false here, but this is {article(out.type)}",
            start(node),
            "compare it with something, e.g. orders >= 1",
        )
    return out


def arity(call: Call, count: int) -> None:
    """Refuse a call with other than ``count`` arguments."""
    if len(call.args) != count:
        plural = "argument" if count == 1 else "arguments"
        raise ExprError(f"{call.name} takes {count} {plural}", call.offset)


def start(node: Node) -> int:
    """Where a node's text begins (operators' offsets point at the operator)."""
    match node:
        case Binary(left=left) | Member(target=left) | Index(target=left) | Macro(target=left):
            return start(left)
        case Conditional(test=test):
            return start(test)
        case Call(target=target) if target is not None:
            return start(target)
        case _:
            return node.offset


def article(type_: Type) -> str:
    """``an int``, ``a double``: types named in messages, with their article."""
    return f"an {type_}" if str(type_)[0] in "aeiou" else f"a {type_}"


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """A hint naming the choice closest to a mistyped ``name``, if one is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None

"""Type-check an expression's syntax tree and compile it to nested closures.

Each kind of node has its type rules in one module (``operators``, ``access``, ``calls``);
the closures they build, and the run-time rules that keep evaluation from raising (null
in, null out), are in ``runtime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from taggers.expr import access, calls, macros, operators
from taggers.expr.calls import FUNCTIONS
from taggers.expr.checked import Checked, Fn, article, constant, suggest
from taggers.expr.parser import (
    Binary,
    Call,
    Conditional,
    ExprError,
    Index,
    ListLiteral,
    Literal,
    Macro,
    Member,
    Name,
    Node,
    Unary,
    parse,
)
from taggers.expr.runtime import read
from taggers.expr.types import BOOL, DOUBLE, DURATION, INT, NULL, STRING, Type, assignable


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    """A compiled expression: its source, result type, the names it reads, and a function
    from those names' values to its result. ``evaluate`` never raises."""

    source: str
    type: Type
    reads: frozenset[str]
    evaluate: Fn


def compile_expression(
    source: str,
    names: Mapping[str, Type],
    *,
    expect: Type | None = None,
    constants: Mapping[str, Any] | None = None,
    zone: tzinfo = UTC,
) -> CompiledExpr:
    """Parse, type-check and compile ``source``.

    ``names`` are the names it may read, with their types; those in ``constants`` are
    fixed (parameters, word lists) and folded in now; the rest are read at run time from
    the mapping passed to ``evaluate``. ``zone`` is the time zone of the date functions
    (the rule set's). Raises ExprError (message, offset, hint).
    """
    tree = parse(source)
    compiler = _Compiler(names, constants or {}, zone)
    result = compiler.compile(tree)
    if expect is not None and not assignable(result.type, expect):
        raise _expected(expect, result.type)
    return CompiledExpr(source, result.type, frozenset(compiler.reads), result.fn)


def _expected(expect: Type, got: Type) -> ExprError:
    if expect == BOOL:
        return ExprError(
            f"a condition must be true or false, but this is {article(got)}",
            0,
            "compare it with something, e.g. spend_90d >= 1000",
        )
    if expect == DURATION:
        return ExprError(
            f"expected a duration, but this is {article(got)}", 0, "write e.g. 14d or 12h"
        )
    return ExprError(f"expected {article(expect)}, but this is {article(got)}", 0)


_LITERAL_TYPES = {"dur": DURATION, "str": STRING, "bool": BOOL, "null": NULL}


class _Compiler:
    """One expression's compilation: the names it may read, and those it does."""

    def __init__(
        self, names: Mapping[str, Type], constants: Mapping[str, Any], zone: tzinfo
    ) -> None:
        self.names = names
        self.constants = constants
        self.zone = zone
        self.reads: set[str] = set()
        self.scope: dict[str, Type] = {}  # the item names of the macros around a part
        self.live: set[str] = set()  # the run-time names and items read so far

    def __call__(self, node: Node, /) -> Checked:
        """The compile step the type checkers recurse through (``checked.Compile``)."""
        return self.compile(node)

    def compile(self, node: Node) -> Checked:
        """Type-check and compile ``node``; a part that reads nothing run-time is
        evaluated now, once."""
        out = self._compile(node)
        if out.const and not isinstance(node, Literal):
            return constant(out.type, out.fn({}))
        return out

    def _compile(self, node: Node) -> Checked:
        match node:
            case Literal():
                type_ = _LITERAL_TYPES.get(node.kind) or (
                    INT if isinstance(node.value, int) else DOUBLE
                )
                return constant(type_, node.value)
            case Name():
                return self.name(node)
            case Unary():
                return operators.unary(self, node)
            case Binary():
                return operators.binary(self, node)
            case Conditional():
                return operators.conditional(self, node)
            case Member():
                return access.member(self, node)
            case Index():
                return access.index(self, node)
            case ListLiteral():
                return access.list_literal(self, node)
            case Macro():
                return macros.compile_macro(self, self.bind, node)
            case Call(target=None):
                return calls.function(self, node)
            case Call():
                return calls.method(self, node)

    def bind(self, macro: Macro, type_: Type, part: Node) -> Checked:
        """Compile ``part`` of a macro's body with the macro's item name bound to a value of
        ``type_``; constant when it reads no run-time value but the item."""
        var = macro.var
        if var in self.names or var in self.scope:
            taken = {*self.names, *self.scope}
            what = "a name rules read" if var in self.names else "an outer macro's item"
            raise ExprError(
                f"{var!r} is already {what}: the item needs a name of its own",
                macro.var_offset,
                f"name it something else, e.g. {_fresh(taken)}",
            )
        outer, self.live = self.live, set()
        self.scope[var] = type_
        try:
            out = self.compile(part)
        finally:
            del self.scope[var]
            inner, self.live = self.live - {var}, outer
        self.live |= inner
        return Checked(out.type, out.fn, const=not inner)

    def name(self, node: Name) -> Checked:
        """A name: a macro's item, a constant folded in, or a value read at run time."""
        name = node.name
        if name in self.scope:
            self.live.add(name)
            return Checked(self.scope[name], read(name))
        type_ = self.names.get(name)
        if type_ is None:
            hint = suggest(name, list(self.names))
            if hint is None and name in FUNCTIONS:
                hint = f"{name} is a function: {name}(...)"
            raise ExprError(f"unknown name {name!r}", node.offset, hint)
        self.reads.add(name)
        if name in self.constants:
            return constant(type_, self.constants[name])
        self.live.add(name)
        return Checked(type_, read(name))


def _fresh(taken: set[str]) -> str:
    """An item name no rule reads: ``i``, ``j``... or ``item``."""
    return next((n for n in ("i", "j", "k", "item", "each") if n not in taken), "item_")

"""Type rules of the operators: ``!`` and ``-``, ``&& ||``, ``== !=``, ``< <= > >=``,
``in``, ``+ - * / %`` and ``? :``; what each accepts and gives, and its error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from taggers.expr import runtime
from taggers.expr.checked import Checked, Compile, article, condition, constant
from taggers.expr.parser import Binary, Conditional, ExprError, Literal, Name, Node, Unary
from taggers.expr.types import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    Type,
    common,
    comparable,
    list_of,
)

_TIME: Final = (DURATION, TIMESTAMP)
_ORDERED: Final = frozenset({int, float, str, bool})
"""The constants the fast path of ``name < constant`` compares with."""


def unary(compile_: Compile, node: Unary) -> Checked:
    """``!x`` or ``-x``."""
    if node.op == "!":
        operand = condition(compile_, node.operand)
        return Checked(BOOL, runtime.negation(operand.fn), operand.const)
    out = compile_(node.operand)
    if not (out.type.numeric or out.type in (DURATION, DYN, NULL)):
        raise ExprError(f"cannot negate {article(out.type)}", node.offset)
    return Checked(out.type, runtime.negative(out.fn), out.const)


def binary(compile_: Compile, node: Binary) -> Checked:
    """``left op right``, for any binary operator."""
    return _BINARY.get(node.op, _arithmetic)(compile_, node)


def conditional(compile_: Compile, node: Conditional) -> Checked:
    """``test ? then : otherwise``: both branches have one type."""
    test = condition(compile_, node.test)
    then, otherwise = compile_(node.then), compile_(node.otherwise)
    type_ = common([then.type, otherwise.type])
    if type_ is None:
        raise ExprError(
            f"both branches must have one type, not {then.type} and {otherwise.type}",
            node.offset,
        )
    const = test.const and then.const and otherwise.const
    return Checked(type_, runtime.chosen(test.fn, then.fn, otherwise.fn), const)


def _logical(compile_: Compile, node: Binary) -> Checked:
    left, right = condition(compile_, node.left), condition(compile_, node.right)
    combine = runtime.both if node.op == "&&" else runtime.either
    return Checked(BOOL, combine(left.fn, right.fn), left.const and right.const)


def _equality(compile_: Compile, node: Binary) -> Checked:
    left, right = compile_(node.left), compile_(node.right)
    if not comparable(left.type, right.type, ordering=False):
        raise ExprError(
            f"cannot compare {left.type} with {right.type}", node.offset, _mix_hint(left, right)
        )
    negated = node.op == "!="
    const = left.const and right.const
    if _is_null(node.left) or _is_null(node.right):
        # The presence tests: the only comparisons where null is an answer, not false.
        other = right if _is_null(node.left) else left
        return Checked(BOOL, runtime.is_null(other.fn, negated=negated), const)
    for bound, other in ((right, left), (left, right)):
        if bound.const and not other.const:
            value = bound.fn({})
            if value is None:
                return constant(BOOL, False)
            return Checked(BOOL, runtime.equal_to(other.fn, value, negated=negated))
    return Checked(BOOL, runtime.equal(left.fn, right.fn, negated=negated), const)


def _is_null(node: Node) -> bool:
    return isinstance(node, Literal) and node.kind == "null"


def _ordering(compile_: Compile, node: Binary) -> Checked:
    left, right = compile_(node.left), compile_(node.right)
    if not comparable(left.type, right.type, ordering=True):
        raise ExprError(
            f"cannot compare {left.type} with {right.type}", node.offset, _mix_hint(left, right)
        )
    op = runtime.ORDERING[node.op]
    if right.const and isinstance(node.left, Name) and not left.const:
        bound = right.fn({})
        if bound is None:
            return constant(BOOL, False)
        if bound.__class__ in _ORDERED:
            return Checked(BOOL, runtime.name_compared(op, node.left.name, bound))
    return Checked(BOOL, runtime.compared(op, left.fn, right.fn), left.const and right.const)


def _membership(compile_: Compile, node: Binary) -> Checked:
    left, right = compile_(node.left), compile_(node.right)
    container = right.type
    if container.kind == "list":
        assert container.elem is not None
        ok = comparable(left.type, container.elem, ordering=False)
    elif container.kind == "map":
        ok = left.type in (STRING, DYN, NULL)
    else:
        ok = container in (DYN, NULL)
    if not ok:
        raise ExprError(
            f"cannot look for {article(left.type)} in {article(container)}",
            node.offset,
            "`in` looks for a value in a list, e.g. stage in ['active', 'loyal']",
        )
    fn = runtime.member_of(left.fn, right.fn, null=_is_null(node.left))
    return Checked(BOOL, fn, left.const and right.const)


def _arithmetic(compile_: Compile, node: Binary) -> Checked:
    left, right = compile_(node.left), compile_(node.right)
    type_ = arithmetic_type(node.op, left.type, right.type)
    if type_ is None:
        raise ExprError(
            f"cannot use {node.op} on {left.type} and {right.type}",
            node.offset,
            _mix_hint(left, right),
        )
    fn = runtime.calculated(runtime.ARITHMETIC[node.op], left.fn, right.fn, whole=type_ in _TIME)
    return Checked(type_, fn, left.const and right.const)


_BINARY: Final[dict[str, Callable[[Compile, Binary], Checked]]] = {
    "&&": _logical,
    "||": _logical,
    "==": _equality,
    "!=": _equality,
    "<": _ordering,
    "<=": _ordering,
    ">": _ordering,
    ">=": _ordering,
    "in": _membership,
}
"""The binary operators other than arithmetic (``+ - * / %``, the default)."""

_NON_NUMERIC_ARITHMETIC: Final[dict[str, dict[tuple[Type, Type], Type]]] = {
    "+": {
        (STRING, STRING): STRING,
        (DURATION, DURATION): DURATION,
        (TIMESTAMP, DURATION): TIMESTAMP,
        (DURATION, TIMESTAMP): TIMESTAMP,
    },
    "-": {
        (DURATION, DURATION): DURATION,
        (TIMESTAMP, DURATION): TIMESTAMP,
        (TIMESTAMP, TIMESTAMP): DURATION,
    },
    "*": {(DURATION, INT): DURATION, (DURATION, DOUBLE): DURATION},
    "/": {
        (DURATION, INT): DURATION,
        (DURATION, DOUBLE): DURATION,
        (DURATION, DURATION): DOUBLE,
    },
}
"""Arithmetic on what is not two numbers: strings, durations and timestamps."""


def arithmetic_type(op: str, left: Type, right: Type) -> Type | None:
    """The result type of ``left op right``, or None when the operator does not apply."""
    if NULL in (left, right):
        other = right if left == NULL else left
        return other if other != NULL else NULL
    if DYN in (left, right):
        return DYN
    if left.numeric and right.numeric:
        if op == "/":
            return DOUBLE
        if op == "%":
            return INT if left == right == INT else None
        return INT if left == right == INT else DOUBLE
    if op == "*" and right == DURATION and left.numeric:
        return DURATION
    if op == "+" and left.kind == right.kind == "list":
        # [] + [3, 4] and an event's list + a literal: one item type, or dyn.
        return common([left, right]) or list_of(DYN)
    return _NON_NUMERIC_ARITHMETIC.get(op, {}).get((left, right))


def _mix_hint(left: Checked, right: Checked) -> str | None:
    kinds = {left.type.kind, right.type.kind}
    if kinds & {"double"} and kinds <= {"int", "double"}:
        return "% works on ints: int(x) % 7"
    if "duration" in kinds and kinds & {"int", "double"}:
        return "durations are written with a unit: 14d, 12h, 30m"
    if "string" in kinds and len(kinds) > 1:
        return "strings are quoted, numbers are not"
    return None

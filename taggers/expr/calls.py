"""Type rules of the functions (``max(a, b)``) and methods (``stage.lower()``): one table
of each, naming what every call accepts and gives, and its error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from taggers.expr import dates, maps, runtime, words
from taggers.expr.checked import Checked, Compile, arity, article, start, suggest
from taggers.expr.parser import MACROS, Call, ExprError, Member, Node
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
    assignable,
    common,
    list_of,
    map_of,
)


def function(compile_: Compile, node: Call) -> Checked:
    """``name(args)``."""
    check = _FUNCTIONS.get(node.name)
    if check is None:
        hint = suggest(node.name, FUNCTIONS) or "functions are: " + ", ".join(FUNCTIONS)
        raise ExprError(f"unknown function {node.name!r}", node.offset, hint)
    return check(compile_, node)


def method(compile_: Compile, node: Call) -> Checked:
    """``target.name(args)``."""
    assert node.target is not None
    target = compile_(node.target)
    check = _METHODS.get(node.name)
    if check is None:
        known = (*METHODS, *MACROS)
        hint = suggest(node.name, known) or "methods are: " + ", ".join(known)
        raise ExprError(f"unknown method {node.name!r}", node.offset, hint)
    return check(compile_, node, target)


def _argument(
    compile_: Compile, node: Call, at: int, allowed: tuple[Type, ...], what: str
) -> Checked:
    out = compile_(node.args[at])
    if not any(assignable(out.type, t) for t in allowed):
        raise ExprError(f"{node.name} needs {what}, not {article(out.type)}", start(node.args[at]))
    return out


# --- functions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Conversion:
    """A one-argument function: what it accepts (``what`` names it in messages), its
    result type (None: the argument's), and what it does to a value that is there."""

    allowed: tuple[Type, ...]
    what: str
    result: Type | None
    apply: Callable[[Any], Any]
    hint: str | None = None


_CONVERSIONS: Final = {
    "size": _Conversion((STRING, list_of(DYN), map_of(DYN)), "a string or a list", INT, len),
    "int": _Conversion(
        (DOUBLE, STRING, DURATION, TIMESTAMP),
        "a number or a string",
        INT,
        runtime.to_int,
        "int() takes digits with an optional sign, e.g. int('-42'), and ints are 64-bit",
    ),
    "double": _Conversion(
        (DOUBLE, STRING), "a number or a string", DOUBLE, float, "e.g. double('2.5')"
    ),
    "string": _Conversion((DYN,), "a value", STRING, runtime.to_string),
    "abs": _Conversion((DOUBLE, DURATION), "a number or a duration", None, abs),
}


def _conversion(compile_: Compile, node: Call) -> Checked:
    arity(node, 1)
    return _converted(node.name, compile_(node.args[0]), node.args[0])


def _converted(name: str, arg: Checked, arg_node: Node) -> Checked:
    type_ = arg.type
    conversion = _CONVERSIONS[name]
    if type_.kind == "object" or not any(assignable(type_, t) for t in conversion.allowed):
        raise ExprError(f"{name} needs {conversion.what}, not {article(type_)}", start(arg_node))
    result = conversion.result
    if result is None:
        result = DYN if type_ in (NULL, DYN) else type_
    apply = conversion.apply
    if name == "string" and type_ in (TIMESTAMP, DURATION):
        apply = runtime.timestamp_text if type_ == TIMESTAMP else runtime.duration_text
    fn = runtime.guarded(apply, arg.fn)
    if arg.const and arg.fn({}) is not None and fn({}) is None:
        shown = repr(arg.fn({}))
        raise ExprError(
            f"{name}({shown[:40]}) can never give a value", start(arg_node), conversion.hint
        )
    return Checked(result, fn, arg.const)


def _contains_any(compile_: Compile, node: Call) -> Checked:
    arity(node, 2)
    text = _argument(compile_, node, 0, (STRING,), "a string")
    found = _argument(compile_, node, 1, (list_of(STRING),), "a list of strings")
    if found.const:  # a word list: matched by length groups (see WordMatcher)
        return Checked(BOOL, words.contains_fixed(text.fn, found.fn({})), text.const)
    return Checked(BOOL, words.contains_any(text.fn, found.fn), text.const and found.const)


def _matched_words(compile_: Compile, node: Call) -> Checked:
    arity(node, 2)
    text = _argument(compile_, node, 0, (STRING,), "a string")
    found = _argument(compile_, node, 1, (list_of(STRING),), "a list of strings")
    fn = words.matched_words(text.fn, found.fn, fixed=found.const)
    return Checked(list_of(STRING), fn, text.const and found.const)


def _excerpt(compile_: Compile, node: Call) -> Checked:
    arity(node, 3)
    text = _argument(compile_, node, 0, (STRING,), "a string")
    found = _argument(compile_, node, 1, (list_of(STRING),), "a list of strings")
    chars = _argument(compile_, node, 2, (INT,), "a number of characters")
    fn = words.excerpt(text.fn, found.fn, chars.fn, fixed=found.const)
    return Checked(STRING, fn, text.const and found.const and chars.const)


def _has(compile_: Compile, node: Call) -> Checked:
    arity(node, 1)
    arg = node.args[0]
    if not isinstance(arg, Member):
        raise ExprError("has needs a field, e.g. has(event.props.text)", start(arg))
    target = compile_(arg.target)
    if target.type.kind not in ("map", "object", "dyn", "null"):
        raise ExprError(f"{article(target.type)} has no fields", arg.offset)
    return Checked(BOOL, runtime.has_field(target.fn, arg.name), target.const)


def _extreme(compile_: Compile, node: Call) -> Checked:
    if not node.args:
        raise ExprError(f"{node.name} needs at least one value", node.offset)
    outs = [compile_(arg) for arg in node.args]
    type_ = common([out.type for out in outs])
    if type_ is None or not (type_.numeric or type_ in (DURATION, TIMESTAMP, STRING, DYN)):
        shown = ", ".join(str(out.type) for out in outs)
        raise ExprError(
            f"{node.name} needs values of one kind, not {shown}",
            node.offset,
            "durations are written like 14d",
        )
    pick = max if node.name == "max" else min
    fn = runtime.extreme_of(pick, tuple(out.fn for out in outs))
    return Checked(type_, fn, all(out.const for out in outs))


_FUNCTIONS: Final[dict[str, Callable[[Compile, Call], Checked]]] = {
    **dict.fromkeys(_CONVERSIONS, _conversion),
    "contains_any": _contains_any,
    "count_at_least": maps.count_at_least,
    "date": dates.date_part,
    "day": dates.date_part,
    "day_of_week": dates.date_part,
    "days_between": dates.days_between,
    "excerpt": _excerpt,
    "get": maps.get,
    "has": _has,
    "hour": dates.date_part,
    "keys_at_least": maps.keys_at_least,
    "matched_words": _matched_words,
    "max": _extreme,
    "min": _extreme,
    "month": dates.date_part,
    "timestamp": dates.timestamp,
    "top_key": maps.top_key,
    "top_keys": maps.top_keys,
}
FUNCTIONS: Final = tuple(sorted(_FUNCTIONS))
"""The functions' names."""


# --- methods -------------------------------------------------------------------------------


def _size(_compile: Compile, node: Call, target: Checked) -> Checked:
    arity(node, 0)
    assert node.target is not None
    return _converted("size", target, node.target)


def _string_target(node: Call, target: Checked) -> None:
    if not assignable(target.type, STRING):
        raise ExprError(f"{node.name} works on strings, not {article(target.type)}", node.offset)


def _change_case(_compile: Compile, node: Call, target: Checked) -> Checked:
    _string_target(node, target)
    arity(node, 0)
    change = str.lower if node.name == "lower" else str.upper
    return Checked(STRING, runtime.case_changed(change, target.fn), target.const)


_TEXT_TESTS: Final[dict[str, Callable[[str, str], bool]]] = {
    "contains": str.__contains__,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


def _text_test(compile_: Compile, node: Call, target: Checked) -> Checked:
    _string_target(node, target)
    arity(node, 1)
    arg = _argument(compile_, node, 0, (STRING,), "a string")
    fn = runtime.text_tested(_TEXT_TESTS[node.name], target.fn, arg.fn)
    return Checked(BOOL, fn, target.const and arg.const)


_METHODS: Final[dict[str, Callable[[Compile, Call, Checked], Checked]]] = {
    "contains": _text_test,
    "endsWith": _text_test,
    "lower": _change_case,
    "size": _size,
    "startsWith": _text_test,
    "upper": _change_case,
}
METHODS: Final = tuple(sorted(_METHODS))
"""The methods' names (all on strings but ``size``)."""

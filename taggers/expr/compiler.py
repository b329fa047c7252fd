"""Type-check an expression's syntax tree and compile it to nested closures.

Run-time rules, so that evaluating never raises:
- null in arithmetic gives null; an ordering comparison with null is false; null is false
  where a condition is wanted; ``max``/``min`` skip nulls.
- A ``dyn`` value of the wrong kind at run time behaves like null.
- ``/`` divides exactly (``7 / 2`` is 3.5); dividing by zero gives null.
"""

from __future__ import annotations

import difflib
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from taggers.expr.parser import (
    Binary,
    Call,
    Conditional,
    ExprError,
    Index,
    ListLiteral,
    Literal,
    Member,
    Name,
    Node,
    Unary,
    parse,
)
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
    comparable,
    list_of,
)

Values = Mapping[str, Any]
Fn = Callable[[Values], Any]

_RUNTIME_ERRORS: Final = (TypeError, ValueError, ArithmeticError)
_ORDERING: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}
_TIME: Final = (DURATION, TIMESTAMP)
_CONDITION: Final = (BOOL, DYN, NULL)
FUNCTIONS: Final = ("abs", "contains_any", "double", "has", "int", "max", "min", "size", "string")
METHODS: Final = ("contains", "endsWith", "lower", "size", "startsWith", "upper")


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
) -> CompiledExpr:
    """Parse, type-check and compile ``source``.

    ``names`` are the names it may read, with their types; those in ``constants`` are
    fixed (parameters, word lists) and folded in now; the rest are read at run time from
    the mapping passed to ``evaluate``. Raises ExprError (message, offset, hint).
    """
    tree = parse(source)
    compiler = _Compiler(names, constants or {})
    result = compiler.compile(tree)
    if expect is not None and not assignable(result.type, expect):
        raise _expected(expect, result.type)
    return CompiledExpr(source, result.type, frozenset(compiler.reads), result.fn)


def _expected(expect: Type, got: Type) -> ExprError:
    if expect == BOOL:
        return ExprError(
            f"a condition must be true or false, but this is {_a(got)}",
            0,
            "compare it with something, e.g. spend_90d >= 1000",
        )
    if expect == DURATION:
        return ExprError(f"expected a duration, but this is {_a(got)}", 0, "write e.g. 14d or 12h")
    return ExprError(f"expected {_a(expect)}, but this is {_a(got)}", 0)


@dataclass(frozen=True, slots=True)
class _Out:
    type: Type
    fn: Fn
    const: bool = False


def _constant(type_: Type, value: Any) -> _Out:
    return _Out(type_, lambda _values: value, const=True)


def _start(node: Node) -> int:
    """Where a node's text begins (operators' offsets point at the operator)."""
    match node:
        case Binary(left=left) | Member(target=left) | Index(target=left):
            return _start(left)
        case Conditional(test=test):
            return _start(test)
        case Call(target=target) if target is not None:
            return _start(target)
        case _:
            return node.offset


def _a(type_: Type) -> str:
    """``an int``, ``a double``: types named in messages, with their article."""
    return f"an {type_}" if str(type_)[0] in "aeiou" else f"a {type_}"


def _suggest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


class _Compiler:
    def __init__(self, names: Mapping[str, Type], constants: Mapping[str, Any]) -> None:
        self.names = names
        self.constants = constants
        self.reads: set[str] = set()

    def compile(self, node: Node) -> _Out:
        out = self._compile(node)
        if out.const and not isinstance(node, Literal):
            return _constant(out.type, out.fn({}))
        return out

    def _compile(self, node: Node) -> _Out:
        match node:
            case Literal():
                return self.literal(node)
            case Name():
                return self.name(node)
            case Unary():
                return self.unary(node)
            case Binary(op="&&" | "||"):
                return self.logical(node)
            case Binary(op="==" | "!="):
                return self.equality(node)
            case Binary(op="<" | "<=" | ">" | ">="):
                return self.ordering(node)
            case Binary(op="in"):
                return self.membership(node)
            case Binary():
                return self.arithmetic(node)
            case Conditional():
                return self.conditional(node)
            case Member():
                return self.member(node)
            case Index():
                return self.index(node)
            case Call(target=None):
                return self.function(node)
            case Call():
                return self.method(node)
            case ListLiteral():
                return self.list_literal(node)

    def condition(self, node: Node) -> _Out:
        out = self.compile(node)
        if out.type not in _CONDITION:
            raise ExprError(
                f"expected true or false here, but this is {_a(out.type)}",
                _start(node),
                "compare it with something, e.g. orders >= 1",
            )
        return out

    # --- leaves --------------------------------------------------------------------------

    @staticmethod
    def literal(node: Literal) -> _Out:
        types = {"dur": DURATION, "str": STRING, "bool": BOOL, "null": NULL}
        type_ = types.get(node.kind) or (INT if isinstance(node.value, int) else DOUBLE)
        return _constant(type_, node.value)

    def name(self, node: Name) -> _Out:
        name = node.name
        type_ = self.names.get(name)
        if type_ is None:
            hint = _suggest(name, list(self.names))
            if hint is None and name in FUNCTIONS:
                hint = f"{name} is a function: {name}(...)"
            raise ExprError(f"unknown name {name!r}", node.offset, hint)
        self.reads.add(name)
        if name in self.constants:
            return _constant(type_, self.constants[name])
        return _Out(type_, lambda values: values[name])

    # --- operators -----------------------------------------------------------------------

    def unary(self, node: Unary) -> _Out:
        if node.op == "!":
            operand = self.condition(node.operand)
            fn = operand.fn
            return _Out(BOOL, lambda values: fn(values) is not True, operand.const)
        out = self.compile(node.operand)
        if not (out.type.numeric or out.type in (DURATION, DYN, NULL)):
            raise ExprError(f"cannot negate {_a(out.type)}", node.offset)
        inner = out.fn

        def negate(values: Values) -> Any:
            value = inner(values)
            try:
                return None if value is None else -value
            except _RUNTIME_ERRORS:
                return None

        return _Out(out.type, negate, out.const)

    def logical(self, node: Binary) -> _Out:
        left_out, right_out = self.condition(node.left), self.condition(node.right)
        left, right = left_out.fn, right_out.fn
        const = left_out.const and right_out.const
        if node.op == "&&":
            return _Out(BOOL, lambda v: left(v) is True and right(v) is True, const)
        return _Out(BOOL, lambda v: left(v) is True or right(v) is True, const)

    def equality(self, node: Binary) -> _Out:
        left, right = self.compile(node.left), self.compile(node.right)
        if not comparable(left.type, right.type, ordering=False):
            raise ExprError(
                f"cannot compare {left.type} with {right.type}", node.offset, _mix_hint(left, right)
            )
        lf, rf = left.fn, right.fn
        const = left.const and right.const
        if node.op == "==":
            return _Out(BOOL, lambda v: lf(v) == rf(v), const)
        return _Out(BOOL, lambda v: lf(v) != rf(v), const)

    def ordering(self, node: Binary) -> _Out:
        left, right = self.compile(node.left), self.compile(node.right)
        if not comparable(left.type, right.type, ordering=True):
            raise ExprError(
                f"cannot compare {left.type} with {right.type}", node.offset, _mix_hint(left, right)
            )
        op = _ORDERING[node.op]
        const = left.const and right.const
        if right.const and isinstance(node.left, Name) and not left.const:
            # The hot path of most rules (`orders >= 7`): one closure, no inner calls.
            name, bound = node.left.name, right.fn({})
            if bound is None:
                return _constant(BOOL, False)

            def named(values: Values) -> bool:
                value = values[name]
                if value is None:
                    return False
                try:
                    return bool(op(value, bound))
                except TypeError:
                    return False

            return _Out(BOOL, named)
        lf, rf = left.fn, right.fn

        def compare(values: Values) -> bool:
            a = lf(values)
            if a is None:
                return False
            b = rf(values)
            if b is None:
                return False
            try:
                return bool(op(a, b))
            except TypeError:
                return False

        return _Out(BOOL, compare, const)

    def membership(self, node: Binary) -> _Out:
        left, right = self.compile(node.left), self.compile(node.right)
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
                f"cannot look for {_a(left.type)} in {_a(container)}",
                node.offset,
                "`in` looks for a value in a list, e.g. stage in ['active', 'loyal']",
            )
        lf, rf = left.fn, right.fn

        def contains(values: Values) -> bool:
            items = rf(values)
            if not isinstance(items, (list, tuple, dict, frozenset)):
                return False
            try:
                return lf(values) in items
            except TypeError:
                return False

        return _Out(BOOL, contains, left.const and right.const)

    def arithmetic(self, node: Binary) -> _Out:
        left, right = self.compile(node.left), self.compile(node.right)
        type_ = _arithmetic_type(node.op, left.type, right.type)
        if type_ is None:
            raise ExprError(
                f"cannot use {node.op} on {left.type} and {right.type}",
                node.offset,
                _mix_hint(left, right),
            )
        op = _ARITHMETIC[node.op]
        whole = type_ in _TIME
        lf, rf = left.fn, right.fn

        def calculate(values: Values) -> Any:
            a = lf(values)
            if a is None:
                return None
            b = rf(values)
            if b is None:
                return None
            try:
                result = op(a, b)
                return int(result) if whole else result
            except _RUNTIME_ERRORS:
                return None

        return _Out(type_, calculate, left.const and right.const)

    def conditional(self, node: Conditional) -> _Out:
        test_out = self.condition(node.test)
        test = test_out.fn
        then, otherwise = self.compile(node.then), self.compile(node.otherwise)
        type_ = common([then.type, otherwise.type])
        if type_ is None:
            raise ExprError(
                f"both branches must have one type, not {then.type} and {otherwise.type}",
                node.offset,
            )
        tf, of = then.fn, otherwise.fn
        const = test_out.const and then.const and otherwise.const
        return _Out(type_, lambda v: tf(v) if test(v) is True else of(v), const)

    # --- access --------------------------------------------------------------------------

    def member(self, node: Member) -> _Out:
        target = self.compile(node.target)
        type_ = target.type
        name = node.name
        if type_.kind == "object":
            found = type_.field(name)
            if found is None:
                raise ExprError(
                    f"unknown field {name!r}",
                    node.offset,
                    _suggest(name, type_.field_names())
                    or (
                        "fields are: " + ", ".join(type_.field_names())
                        if type_.field_names()
                        else None
                    ),
                )
            type_ = found
        elif type_.kind == "map":
            assert type_.elem is not None
            type_ = type_.elem
        elif type_ in (DYN, NULL):
            type_ = DYN
        else:
            raise ExprError(f"{_a(type_)} has no fields", node.offset)
        tf = target.fn

        def get(values: Values) -> Any:
            found = tf(values)
            return found.get(name) if isinstance(found, dict) else None

        return _Out(type_, get, target.const)

    def index(self, node: Index) -> _Out:
        target, key = self.compile(node.target), self.compile(node.index)
        kind = target.type.kind
        if kind == "list":
            wanted = INT
        elif kind in ("map", "object"):
            wanted = STRING
        elif target.type in (DYN, NULL):
            wanted = DYN
        else:
            raise ExprError(f"cannot index {_a(target.type)}", node.offset)
        if not assignable(key.type, wanted) or (wanted == INT and key.type == DOUBLE):
            raise ExprError(
                f"the index must be {_a(wanted)}, not {_a(key.type)}", _start(node.index)
            )
        elem = target.type.elem or DYN
        tf, kf = target.fn, key.fn

        def get(values: Values) -> Any:
            found, at = tf(values), kf(values)
            if isinstance(found, dict):
                return found.get(at) if isinstance(at, str) else None
            if isinstance(found, (list, tuple)) and isinstance(at, int):
                return found[at] if -len(found) <= at < len(found) else None
            return None

        return _Out(elem, get, target.const and key.const)

    def list_literal(self, node: ListLiteral) -> _Out:
        items = [self.compile(item) for item in node.items]
        elem = common([item.type for item in items]) if items else DYN
        if elem is None:
            raise ExprError("list items must have one type", node.offset)
        fns = [item.fn for item in items]
        if all(item.const for item in items):
            return _constant(list_of(elem), tuple(fn({}) for fn in fns))
        return _Out(list_of(elem), lambda v: tuple(fn(v) for fn in fns))

    # --- calls ---------------------------------------------------------------------------

    def arity(self, node: Call, count: int) -> None:
        if len(node.args) != count:
            plural = "argument" if count == 1 else "arguments"
            raise ExprError(f"{node.name} takes {count} {plural}", node.offset)

    def argument(self, node: Call, at: int, allowed: tuple[Type, ...], what: str) -> _Out:
        out = self.compile(node.args[at])
        if not any(assignable(out.type, t) for t in allowed):
            raise ExprError(f"{node.name} needs {what}, not {_a(out.type)}", _start(node.args[at]))
        return out

    def function(self, node: Call) -> _Out:
        name = node.name
        if name == "has":
            return self.has(node)
        if name in ("max", "min"):
            return self.extreme(node)
        if name == "contains_any":
            self.arity(node, 2)
            text = self.argument(node, 0, (STRING,), "a string")
            words = self.argument(node, 1, (list_of(STRING),), "a list of strings")
            if words.const:  # a word list: matched by length groups (see WordMatcher)
                found = words.fn({})
                matcher = _matcher(found) if isinstance(found, tuple) else WordMatcher(found)
                tf = text.fn
                return _Out(BOOL, lambda v: matcher.search(tf(v)), text.const)
            return _Out(BOOL, _contains_any(text.fn, words.fn), text.const and words.const)
        if name in ("size", "int", "double", "string", "abs"):
            self.arity(node, 1)
            return self.unary_function(node, name, node.args[0])
        hint = _suggest(name, FUNCTIONS) or "functions are: " + ", ".join(FUNCTIONS)
        raise ExprError(f"unknown function {name!r}", node.offset, hint)

    def unary_function(self, node: Call, name: str, arg_node: Node) -> _Out:
        arg = self.compile(arg_node)
        type_ = arg.type
        wanted: dict[str, tuple[tuple[Type, ...], str, Type]] = {
            "size": ((STRING, list_of(DYN), Type("map", DYN)), "a string or a list", INT),
            "int": ((DOUBLE, STRING, DURATION, TIMESTAMP), "a number or a string", INT),
            "double": ((DOUBLE, STRING), "a number or a string", DOUBLE),
            "string": ((DYN,), "a value", STRING),
            "abs": ((DOUBLE, DURATION), "a number or a duration", type_),
        }
        allowed, what, result = wanted[name]
        if type_.kind == "object" or not any(assignable(type_, t) for t in allowed):
            raise ExprError(f"{name} needs {what}, not {_a(type_)}", _start(arg_node))
        if name == "abs" and type_ in (NULL, DYN):
            result = DYN
        return _Out(result, _guarded(_CONVERSIONS[name], arg.fn), arg.const)

    def has(self, node: Call) -> _Out:
        self.arity(node, 1)
        arg = node.args[0]
        if not isinstance(arg, Member):
            raise ExprError(
                "has needs a field, e.g. has(event.props.text)", _start(arg) if node.args else 0
            )
        target = self.compile(arg.target)
        if target.type.kind not in ("map", "object", "dyn", "null"):
            raise ExprError(f"{_a(target.type)} has no fields", arg.offset)
        tf, key = target.fn, arg.name

        def has(values: Values) -> bool:
            found = tf(values)
            return isinstance(found, dict) and found.get(key) is not None

        return _Out(BOOL, has, target.const)

    def extreme(self, node: Call) -> _Out:
        if not node.args:
            raise ExprError(f"{node.name} needs at least one value", node.offset)
        outs = [self.compile(arg) for arg in node.args]
        type_ = common([out.type for out in outs])
        if type_ is None or not (type_.numeric or type_ in (DURATION, TIMESTAMP, STRING, DYN)):
            shown = ", ".join(str(out.type) for out in outs)
            raise ExprError(
                f"{node.name} needs values of one kind, not {shown}",
                node.offset,
                "durations are written like 14d",
            )
        pick = max if node.name == "max" else min
        fns = tuple(out.fn for out in outs)

        def extreme(values: Values) -> Any:
            present = [value for value in (fn(values) for fn in fns) if value is not None]
            try:
                return pick(present) if present else None
            except TypeError:
                return None

        return _Out(type_, extreme, all(out.const for out in outs))

    def method(self, node: Call) -> _Out:
        assert node.target is not None
        target = self.compile(node.target)
        if node.name == "size":
            self.arity(node, 0)
            return self.unary_function(node, "size", node.target)
        if node.name not in METHODS:
            hint = _suggest(node.name, METHODS) or "methods are: " + ", ".join(METHODS)
            raise ExprError(f"unknown method {node.name!r}", node.offset, hint)
        if not assignable(target.type, STRING):
            raise ExprError(f"{node.name} works on strings, not {_a(target.type)}", node.offset)
        tf = target.fn
        if node.name in ("lower", "upper"):
            self.arity(node, 0)
            change = str.lower if node.name == "lower" else str.upper
            return _Out(
                STRING,
                lambda v: change(s) if isinstance(s := tf(v), str) else None,
                target.const,
            )
        self.arity(node, 1)
        arg = self.argument(node, 0, (STRING,), "a string")
        af = arg.fn
        test = {"contains": str.__contains__, "startsWith": str.startswith}.get(
            node.name, str.endswith
        )

        def check(values: Values) -> bool:
            text, part = tf(values), af(values)
            return isinstance(text, str) and isinstance(part, str) and bool(test(text, part))

        return _Out(BOOL, check, target.const and arg.const)


def _arithmetic_type(op: str, left: Type, right: Type) -> Type | None:
    """The result type of ``left op right``, or None when the operator does not apply."""
    if NULL in (left, right):
        other = right if left == NULL else left
        return other if other != NULL else NULL
    if DYN in (left, right):
        return DYN
    if left.numeric and right.numeric:
        if op == "/":
            return DOUBLE
        return INT if left == right == INT else DOUBLE
    pair = (left, right)
    table: dict[str, dict[tuple[Type, Type], Type]] = {
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
    if op == "*" and right == DURATION and left.numeric:
        return DURATION
    if op == "+" and left.kind == right.kind == "list":
        return common([left, right])
    return table.get(op, {}).get(pair)


def _mix_hint(left: _Out, right: _Out) -> str | None:
    kinds = {left.type.kind, right.type.kind}
    if "duration" in kinds and kinds & {"int", "double"}:
        return "durations are written with a unit: 14d, 12h, 30m"
    if "string" in kinds and len(kinds) > 1:
        return "strings are quoted, numbers are not"
    return None


def _guarded(function: Callable[[Any], Any], arg: Fn) -> Fn:
    def call(values: Values) -> Any:
        value = arg(values)
        if value is None:
            return None
        try:
            return function(value)
        except _RUNTIME_ERRORS:
            return None

    return call


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_int(value: Any) -> int:
    return int(float(value)) if isinstance(value, str) else int(value)


_CONVERSIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "size": len,
    "int": _to_int,
    "double": float,
    "string": _to_string,
    "abs": abs,
}


class WordMatcher:
    """Whether a text contains any word of a fixed list, at a cost that does not grow with
    the list: words are grouped by length, and a group of many words is one set that every
    substring of that length is looked up in (C-level slicing and hashing, no Python loop
    per character). Few words of a length are looked for one by one (``in`` is faster
    than slicing the whole text for them). A text of n characters costs at most about n
    set lookups per distinct word length (at most ``MAX_WORD_CHARS`` of them), however
    many words the list holds."""

    FEW: Final = 32  # below this many words of one length, `w in text` each is cheaper

    def __init__(self, words: Any) -> None:
        by_length: dict[int, set[str]] = {}
        for word in words if isinstance(words, (list, tuple)) else ():
            if isinstance(word, str) and word:
                by_length.setdefault(len(word), set()).add(word)
        self.few = tuple(w for group in by_length.values() if len(group) < self.FEW for w in group)
        self.groups = tuple(
            (length, frozenset(group))
            for length, group in sorted(by_length.items())
            if len(group) >= self.FEW
        )

    def search(self, text: Any) -> bool:
        """Whether ``text`` (a string; anything else is not) contains any of the words."""
        if not isinstance(text, str):
            return False
        if any(word in text for word in self.few):
            return True
        size = len(text)
        for length, group in self.groups:
            if length > size:
                break
            parts = map(
                text.__getitem__, map(slice, range(size - length + 1), range(length, size + 1))
            )
            if not group.isdisjoint(parts):
                return True
        return False


@functools.lru_cache(maxsize=8)
def _matcher(words: tuple[str, ...]) -> WordMatcher:
    """One matcher per word list, however many rules read it."""
    return WordMatcher(words)


def _contains_any(text: Fn, words: Fn) -> Fn:
    def contains_any(values: Values) -> bool:
        found, candidates = text(values), words(values)
        if not isinstance(found, str) or not isinstance(candidates, (list, tuple)):
            return False
        return any(isinstance(w, str) and w and w in found for w in candidates)

    return contains_any

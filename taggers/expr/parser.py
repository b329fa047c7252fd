"""Tokens and syntax tree of the expression language (a subset of CEL plus ``14d``).

Precedence, loosest first: ``? :``, ``||``, ``&&``, comparisons and ``in``, ``+ -``,
``* / %``, unary ``! -``, then member access, indexing and calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from taggers.durations import MAX_DURATION_MS, UNIT_MS

MAX_LENGTH: Final = 4_000
"""The longest expression, in characters."""
MAX_DEPTH: Final = 50
"""The deepest syntax tree: every operator, call, field access, index and bracket is a
level, so that ``a + b + c`` is three deep, like ``((a + b) + c)``. Type-checking,
compiling and evaluating walk the tree recursively; this keeps them far inside Python's
recursion limit, whatever the caller's stack."""
MAX_NODES: Final = 1_000
"""The most values, names and operators in one expression."""


class ExprError(Exception):
    """A problem in an expression at character ``offset``, with an optional hint."""

    def __init__(self, message: str, offset: int, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message} (hint: {hint})")
        self.message = message
        self.offset = offset
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Token:
    """A token: its kind (``num``, ``dur``, ``str``, ``name`` or the operator), value, place."""

    kind: str
    value: Any
    offset: int


_OPERATORS: Final = ("||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%")
_PUNCTUATION: Final = ("!", "?", ":", ".", ",", "(", ")", "[", "]")
_SYMBOLS: Final = sorted(_OPERATORS + _PUNCTUATION, key=len, reverse=True)
# ASCII only: a letter or digit of another script is an unexpected character, not a name
# or number the patterns below would not match.
_NUMBER: Final = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?([a-zA-Z_]\w*)?", re.ASCII)
_NAME: Final = re.compile(r"[A-Za-z_]\w*", re.ASCII)
_ESCAPES: Final = {
    **{"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"},
    **{"\\": "\\", "'": "'", '"': '"', "?": "?", "`": "`"},
}
_CODE_ESCAPES: Final = re.compile(
    r"[xX][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2}"
)
"""CEL's escapes by number: \\x41 (or \\X41), \\u4e2d, \\U0001f431 and octal \\101."""
_MISTAKES: Final = {
    "=": "compare with ==",
    "&": "write && for 'and'",
    "|": "write || for 'or'",
}
_WORD_OPERATORS: Final = {"and": "&&", "or": "||", "not": "!"}


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``end`` token."""
    if len(source) > MAX_LENGTH:
        raise ExprError(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    tokens: list[Token] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char.isspace():
            i += 1
        elif char.isascii() and char.isdigit():
            i = _number(source, i, tokens)
        elif char in "'\"":
            i = _string(source, i, tokens)
        elif char.isascii() and (char.isalpha() or char == "_"):
            match = _NAME.match(source, i)
            assert match is not None
            tokens.append(Token("name", match.group(), i))
            i = match.end()
        else:
            symbol = next((s for s in _SYMBOLS if source.startswith(s, i)), None)
            if symbol is None:
                raise ExprError(f"unexpected character {char!r}", i, _MISTAKES.get(char))
            tokens.append(Token(symbol, symbol, i))
            i += len(symbol)
    tokens.append(Token("end", None, len(source)))
    return tokens


def _number(source: str, start: int, tokens: list[Token]) -> int:
    match = _NUMBER.match(source, start)
    assert match is not None
    digits = match.group()[: match.start(3) - start] if match.group(3) else match.group()
    unit = match.group(3)
    if unit is None:
        is_float = match.group(1) or match.group(2)
        tokens.append(Token("num", float(digits) if is_float else int(digits), start))
    elif unit in UNIT_MS and not match.group(2):
        value = float(digits) * UNIT_MS[unit]
        if value > MAX_DURATION_MS:
            raise ExprError(f"duration {match.group()[:40]!r} is too long", start, "at most 36500d")
        tokens.append(Token("dur", int(value), start))
    else:
        raise ExprError(
            f"bad number {match.group()!r}",
            start,
            "durations are a number and a unit: 14d, 12h, 30m, 45s, 1500ms",
        )
    return match.end()


def _string(source: str, start: int, tokens: list[Token]) -> int:
    quote = source[start]
    chars: list[str] = []
    i = start + 1
    while i < len(source):
        char = source[i]
        if char == quote:
            tokens.append(Token("str", "".join(chars), start))
            return i + 1
        if char == "\\" and i + 1 < len(source):
            i = _escape(source, i, chars)
            continue
        chars.append(char)
        i += 1
    raise ExprError("unterminated string", start, f"close it with {quote}")


def _escape(source: str, at: int, chars: list[str]) -> int:
    """Read the escape at ``at`` (a backslash) into ``chars``; where the string goes on."""
    escaped = source[at + 1]
    if escaped in _ESCAPES:
        chars.append(_ESCAPES[escaped])
        return at + 2
    code = _CODE_ESCAPES.match(source, at + 1)
    if code is None:
        raise ExprError(f"unknown escape \\{escaped}", at, "escapes are \\n \\t \\\\ \\' \\u4e2d")
    digits = code.group()
    number = int(digits, 8) if digits[0].isdigit() else int(digits[1:], 16)
    if 0xD800 <= number <= 0xDFFF or number > 0x10FFFF:
        raise ExprError(f"\\{digits} is not a character", at)
    chars.append(chr(number))
    return code.end()


# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal: number, duration (as ``dur``), string, true, false or null."""

    kind: str  # num, dur, str, bool, null
    value: Any
    offset: int


@dataclass(frozen=True, slots=True)
class Name:
    """A name: an aggregate, a parameter, ``stage``, ``event`` or ``lists``."""

    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Unary:
    """``!x`` or ``-x``."""

    op: str
    operand: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``; ``offset`` is the operator's."""

    op: str
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Conditional:
    """``test ? then : otherwise``."""

    test: Node
    then: Node
    otherwise: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Member:
    """``target.name``; ``offset`` is the name's."""

    target: Node
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Index:
    """``target[index]``."""

    target: Node
    index: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)`` or, with a target, the method call ``target.name(args)``."""

    name: str
    args: tuple[Node, ...]
    target: Node | None
    offset: int


@dataclass(frozen=True, slots=True)
class Macro:
    """``target.name(var, body)``, a list macro (``MACROS``): ``var`` is a new name that
    each item of ``target`` has in ``body``; ``offset`` is the macro's name's."""

    name: str
    target: Node
    var: str
    body: Node
    offset: int
    var_offset: int


@dataclass(frozen=True, slots=True)
class ListLiteral:
    """``[a, b, c]``."""

    items: tuple[Node, ...]
    offset: int


Node = Literal | Name | Unary | Binary | Conditional | Member | Index | Call | Macro | ListLiteral

MACROS: Final = ("all", "exists", "exists_one", "filter", "map")
"""The list macros: ``items.exists(i, i.price > 100)``."""

_RELATIONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})


def parse(source: str) -> Node:
    """Parse an expression into its syntax tree; raises ExprError with the offset."""
    parser = _Parser(tokenize(source))
    node = parser.conditional()
    parser.expect("end")
    parts(node)
    return node


def children(node: Node) -> tuple[Node, ...]:
    """The nodes directly inside ``node``."""
    match node:
        case Unary(operand=operand):
            return (operand,)
        case Binary(left=left, right=right):
            return (left, right)
        case Conditional(test=test, then=then, otherwise=otherwise):
            return (test, then, otherwise)
        case Member(target=target):
            return (target,)
        case Index(target=target, index=index):
            return (target, index)
        case Call(args=args, target=target):
            return args if target is None else (target, *args)
        case Macro(target=target, body=body):
            return (target, body)
        case ListLiteral(items=items):
            return items
        case _:
            return ()


def parts(root: Node) -> int:
    """How many nodes a tree has; refuses one deeper than MAX_DEPTH or larger than
    MAX_NODES (walked with a stack of its own: the check must not be what exhausts the
    recursion limit)."""
    stack = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExprError(
                f"expression has more than {MAX_NODES} parts",
                node.offset,
                "split it: compute a part in an aggregate, or name a value in params",
            )
        if depth > MAX_DEPTH:
            raise ExprError(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels,"
                " each operator and field access counts)",
                node.offset,
                "split it: compute a part in an aggregate, or name a value in params",
            )
        stack.extend((child, depth + 1) for child in children(node))
    return count


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, kind: str) -> Token | None:
        return self.take() if self.token.kind == kind else None

    def expect(self, kind: str) -> Token:
        token = self.token
        if token.kind == kind:
            return self.take()
        if token.kind == "end":
            raise ExprError("unexpected end of expression", token.offset, f"expected {kind!r}")
        hint = f"expected {kind!r}" if kind != "end" else None
        if token.kind == "name" and token.value in _WORD_OPERATORS:
            hint = f"write {_WORD_OPERATORS[token.value]} instead of {token.value}"
        raise ExprError(f"unexpected {_describe(token)}", token.offset, hint)

    def conditional(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError("expression is nested too deeply", self.token.offset)
        test = self.binary(0)
        question = self.accept("?")
        if question is not None:
            then = self.conditional()
            self.expect(":")
            test = Conditional(test, then, self.conditional(), question.offset)
        self.depth -= 1
        return test

    _LEVELS: Final = (
        frozenset({"||"}),
        frozenset({"&&"}),
        _RELATIONS,
        frozenset({"+", "-"}),
        frozenset({"*", "/", "%"}),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.op_kind() in self._LEVELS[level]:
            op = self.take()
            left = Binary(self.op_kind_of(op), left, self.binary(level + 1), op.offset)
        return left

    def op_kind(self) -> str:
        token = self.token
        if token.kind == "name" and token.value == "in":
            return "in"
        return token.kind

    @staticmethod
    def op_kind_of(token: Token) -> str:
        return "in" if token.kind == "name" else token.kind

    def unary(self) -> Node:
        token = self.token
        if token.kind in ("!", "-"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError("expression is nested too deeply", token.offset)
            operand = self.unary()
            self.depth -= 1
            return Unary(token.kind, operand, token.offset)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.accept("."):
                name = self.expect("name")
                if self.accept("("):
                    node = _call(name, self.arguments(")"), node)
                else:
                    node = Member(node, name.value, name.offset)
            elif bracket := self.accept("["):
                node = Index(node, self.conditional(), bracket.offset)
                self.expect("]")
            else:
                return node

    def arguments(self, close: str) -> tuple[Node, ...]:
        args: list[Node] = []
        if self.accept(close):
            return ()
        while True:
            args.append(self.conditional())
            if self.accept(close):
                return tuple(args)
            self.expect(",")

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("num", "dur", "str"):
            return Literal(token.kind, token.value, token.offset)
        if token.kind == "name":
            if token.value in ("true", "false"):
                return Literal("bool", token.value == "true", token.offset)
            if token.value == "null":
                return Literal("null", None, token.offset)
            if token.value in _WORD_OPERATORS or token.value == "in":
                raise ExprError(
                    f"unexpected {token.value!r}",
                    token.offset,
                    f"write {_WORD_OPERATORS.get(token.value, 'in')} between two values",
                )
            if self.accept("("):
                return Call(token.value, self.arguments(")"), None, token.offset)
            return Name(token.value, token.offset)
        if token.kind == "(":
            node = self.conditional()
            self.expect(")")
            return node
        if token.kind == "[":
            return ListLiteral(self.arguments("]"), token.offset)
        if token.kind == "end":
            raise ExprError("unexpected end of expression", token.offset, "a value is missing")
        raise ExprError(f"unexpected {_describe(token)}", token.offset, "a value is missing here")


def _call(name: Token, args: tuple[Node, ...], target: Node) -> Node:
    """The method call ``target.name(args)``, or a macro's use."""
    if name.value not in MACROS:
        return Call(name.value, args, target, name.offset)
    what = "an expression" if name.value == "map" else "a condition"
    example = {"map": "i.price * 2"}.get(name.value, "i.price > 100")
    hint = f"e.g. event.props.items.{name.value}(i, {example})"
    if len(args) != 2:
        raise ExprError(f"{name.value} takes a new name and {what}", name.offset, hint)
    var = args[0]
    if not isinstance(var, Name):
        raise ExprError(
            f"the first argument of {name.value} is a new name for each item",
            var.offset,
            hint,
        )
    return Macro(name.value, target, var.name, args[1], name.offset, var.offset)


def _describe(token: Token) -> str:
    if token.kind == "name":
        return f"name {token.value!r}"
    if token.kind in ("num", "dur"):
        return "number"
    if token.kind == "str":
        return "string"
    return f"{token.kind!r}"

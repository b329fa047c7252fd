"""YAML loading that remembers where every value came from, for file:line:column errors."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from yaml._yaml import CParser

from taggers.yaml_versions import ambiguity

Path_ = tuple[str | int, ...]

# A rule file is data written by people: these bounds keep loading one fast and small
# whatever it holds (docs/rules.md, "Limits"). The default pack is far inside all of them.
MAX_FILE_BYTES: Final = 256 * 1024
"""The most bytes of YAML read for a rule directory (all its rule files together), or
for one rule test file."""
MAX_NODES: Final = 10_000
"""The most YAML values (scalars, lists, mappings) in the same: about 20 times the
default pack, and loaded in well under a second."""
MAX_NESTING: Final = 20
"""The deepest nesting of YAML lists and mappings in one file."""


@dataclass(slots=True)
class Budget:
    """What is left to read of the bounds above, shared by every file of one load."""

    bytes: int = MAX_FILE_BYTES
    nodes: int = MAX_NODES


@dataclass(frozen=True, slots=True)
class Position:
    """Where a value starts in its file (1-based line and column) and how it was written."""

    file: str
    line: int
    column: int
    style: str | None = None  # YAML scalar style: None (plain), "'", '"', "|", ">"

    def offset(self, text: str, offset: int) -> Position:
        """The position of character ``offset`` inside this scalar's text."""
        before = text[:offset]
        newlines = before.count("\n")
        if self.style in ("|", ">"):
            # Block scalars start on the next line, indented; assume two spaces past the key.
            last = before.rsplit("\n", 1)[-1]
            return Position(self.file, self.line + 1 + newlines, self.column + 2 + len(last))
        if newlines:
            return Position(self.file, self.line + newlines, 1 + len(before.rsplit("\n", 1)[-1]))
        quote = 1 if self.style in ("'", '"') else 0
        return Position(self.file, self.line, self.column + quote + offset)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rule set, where it is, and how to fix it."""

    where: Position
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class RuleSetError(Exception):
    """A rule set that failed validation; ``problems`` are sorted by file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.where.file, p.where.line, p.where.column))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class SourceMap:
    """The positions of every mapping key and value of one loaded document, by path."""

    file: str
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def at(self, path: Path_) -> Position:
        """The position of the value at ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def key(self, path: Path_) -> Position:
        """The position of the mapping key that names ``path`` (falls back to its value)."""
        return self.keys.get(path) or self.at(path)


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct rule files do not allow, at its place, with a hint."""

    def __init__(self, problem: str, mark: Any, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class _Loader(
    yaml.composer.Composer,
    CParser,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    """YAML 1.2 booleans: only true and false. A plain value that YAML 1.1 tools read
    otherwise (``yes``, ``on``, ``1:30``, ``012``) is a problem where it is written
    (taggers.yaml_versions), so that a rule file means the same in every YAML tool.

    libyaml (C) reads the text into events, fast; this composes them into nodes (in
    Python, PyYAML's own composer), so that every node can be checked as it is made.

    Plain data only: tags (``!name``) would construct other things than data; anchors and
    aliases (``&a``, ``*a``) can refer to themselves or multiply a small file into billions
    of values. Both are refused where they are written, before anything is built; so is
    nesting deeper than MAX_NESTING and more than MAX_NODES values (each counted as it is
    composed, never after)."""

    def __init__(self, stream: str, budget: Budget) -> None:
        CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._budget = budget

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML aliases (*{event.anchor}) are not allowed in rule files",
                event.start_mark,
                "write the value out where it is used",
            )
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise _Refused(
                f"YAML anchors (&{event.anchor}) are not allowed in rule files",
                event.start_mark,
                "write the value out where it is used",
            )
        tag = getattr(event, "tag", None)
        mark = getattr(event, "start_mark", None)
        if tag is not None:
            raise _Refused(
                f"YAML tags ({tag}) are not allowed in rule files",
                mark,
                "write plain values; quote a text that starts with !",
            )
        self._budget.nodes -= 1
        if self._budget.nodes < 0:
            raise _Refused(
                f"more than {MAX_NODES} values in the rule files together",
                mark,
                "rule sets need far fewer; look for generated or repeated parts",
            )
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _Refused(
                f"nested more than {MAX_NESTING} levels deep",
                mark,
                "rule files need only a few levels",
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        return node


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _marked(
    file: str, error: yaml.MarkedYAMLError, message: str, hint: str | None = None
) -> Problem:
    mark = error.problem_mark or error.context_mark
    where = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
    return Problem(where, message, hint)


def _mark(file: str, node: yaml.Node) -> Position:
    style = node.style if isinstance(node, yaml.ScalarNode) else None
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1, style or None)


def _build(node: yaml.Node, path: Path_, source: SourceMap, problems: list[Problem]) -> Any:
    source.values[path] = _mark(source.file, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    Problem(_mark(source.file, key_node), "a key must be a name, not a list or map")
                )
                continue
            key = str(_scalar(key_node, source, problems, key=True))
            if key in result:
                problems.append(
                    Problem(
                        _mark(source.file, key_node),
                        f"duplicate name {key!r}",
                        "each name may appear once; rename or remove one of them",
                    )
                )
                continue
            source.keys[(*path, key)] = _mark(source.file, key_node)
            result[key] = _build(value_node, (*path, key), source, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), source, problems) for i, item in enumerate(node.value)]
    return _scalar(node, source, problems)


def _ambiguous(node: yaml.Node, file: str, key: bool) -> Problem | None:
    """A problem for a plain scalar that YAML 1.1 and 1.2 tools read differently."""
    if not isinstance(node, yaml.ScalarNode) or node.style:
        return None
    text = str(node.value)
    differs = ambiguity(text)
    if differs is None:
        return None
    where = _mark(file, node)
    if key and text.lower() == "on":
        hint = "the event that triggers an alert or a transition is written upon: (upon: purchase)"
        return Problem(where, f"the key 'on': {differs}", hint)
    what = "key" if key else "value"
    quoted = f"quote it ('{text}') to mean the text"
    if differs.endswith(f"as the text {text!r}"):
        hint = f"write true or false for a boolean, or {quoted}"
    else:
        hint = f"{quoted}, or write the number in plain decimal digits"
    return Problem(where, f"the {what} {text!r} is ambiguous: {differs}", hint)


def _scalar(node: yaml.Node, source: SourceMap, problems: list[Problem], key: bool = False) -> Any:
    # The safe constructor resolves tags, so that 7 is an int and true a bool. A plain
    # value that looks like a type it is not (2026-13-45, an int of 5,000 digits, <<)
    # makes it raise: that value is a problem where it is.
    unclear = _ambiguous(node, source.file, key)
    if unclear is not None:
        problems.append(unclear)
        return str(node.value)
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as error:
        problems.append(
            Problem(
                _mark(source.file, node),
                f"cannot read the value {str(node.value)[:40]!r}: {_reason(error)}",
                "quote it to make it a text",
            )
        )
        return None


def _reason(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        return str(error.problem or "not a value")
    return str(error).split("\n", 1)[0][:120]


class TooLargeError(OSError):
    """A file larger than what was left to read."""


def read_bounded(path: Path, limit: int, inside: Path | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without following it
    anywhere unsafe: its real path (symlinks resolved) must be inside ``inside`` when given;
    devices, pipes and sockets are refused before a byte is read (opening never blocks).

    Raises OSError with a message fit for a rule author.
    """
    real = path.resolve()
    if inside is not None and not real.is_relative_to(inside.resolve()):
        raise OSError(f"{path.name} is outside the rule directory ({real})")
    descriptor = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path.name} is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, min(65_536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > limit:
        raise TooLargeError(f"{path.name} is larger than {limit} bytes")
    return b"".join(chunks)


def load_yaml(
    path: Path,
    display: str | None = None,
    inside: Path | None = None,
    budget: Budget | None = None,
) -> tuple[Any, SourceMap]:
    """Load one YAML document with the positions of everything in it: a regular file
    (inside ``inside`` when given) within what is left of ``budget`` (a fresh one when
    not given), plain data only (see _Loader).

    Raises RuleSetError for unreadable files, YAML syntax errors, refused YAML
    constructs, values that cannot be read and duplicate keys.
    """
    name = display or str(path)
    source = SourceMap(name)
    budget = Budget() if budget is None else budget
    try:
        data = read_bounded(path, budget.bytes, inside)
        budget.bytes -= len(data)
        text = data.decode("utf-8")
    except TooLargeError:
        message = f"too large: the files together may have {MAX_FILE_BYTES} bytes"
        raise RuleSetError([Problem(Position(name, 1, 1), message)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RuleSetError([Problem(Position(name, 1, 1), f"cannot read: {error}")]) from None
    try:
        loader = _Loader(text, budget)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except _Refused as error:
        raise RuleSetError([_marked(name, error, error.problem or "", error.hint)]) from None
    except yaml.MarkedYAMLError as error:
        problem = _marked(name, error, f"YAML syntax: {error.problem or error}")
        raise RuleSetError([problem]) from None
    except yaml.reader.ReaderError as error:  # a character YAML does not allow (a control)
        at = min(error.position, len(data))  # libyaml counts bytes of the UTF-8 text
        start = data.rfind(b"\n", 0, at) + 1
        line = data.count(b"\n", 0, at) + 1
        column = len(data[start:at].decode("utf-8", errors="replace")) + 1
        character = chr(error.character) if isinstance(error.character, int) else error.character
        message = f"YAML: {error.reason} ({character!r})"
        raise RuleSetError([Problem(Position(name, line, column), message)]) from None
    if node is None:
        return None, source
    problems: list[Problem] = []
    data = _build(node, (), source, problems)
    if problems:
        raise RuleSetError(problems)
    return data, source

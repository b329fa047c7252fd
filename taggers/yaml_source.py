"""YAML loading that remembers where every value came from, for file:line:column errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


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


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true and false, so that the rule key ``on:`` stays "on"."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mark(file: str, node: yaml.Node) -> Position:
    style = node.style if isinstance(node, yaml.ScalarNode) else None
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1, style or None)


def _build(node: yaml.Node, path: Path_, source: SourceMap, problems: list[Problem]) -> Any:
    source.values[path] = _mark(source.file, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
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
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    # The safe constructor resolves tags, so that 7 is an int and true a bool.
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, SourceMap]:
    """Load one YAML document with the positions of everything in it.

    Raises RuleSetError for YAML syntax errors and duplicate keys.
    """
    name = display or str(path)
    source = SourceMap(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleSetError([Problem(Position(name, 1, 1), f"cannot read: {error}")]) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = Position(name, mark.line + 1, mark.column + 1) if mark else Position(name, 1, 1)
        raise RuleSetError([Problem(where, f"YAML syntax: {error.problem or error}")]) from None
    if node is None:
        return None, source
    problems: list[Problem] = []
    data = _build(node, (), source, problems)
    if problems:
        raise RuleSetError(problems)
    return data, source

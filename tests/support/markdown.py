"""Reading a Markdown page the way the doc tests check it: fenced blocks, prose, sections,
tables, inline code spans, links, and the ``tagger`` commands of a shell line."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tests.support import ROOT

Row = tuple[int, list[str]]
"""A table row: its line number and its cells."""


@dataclass(frozen=True)
class Block:
    """A fenced code block: its page, language, the line of its opening fence, and its text."""

    page: str
    lang: str
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Page:
    """One Markdown file of the repository."""

    path: Path

    @property
    def name(self) -> str:
        """How test ids and messages name it: its path from the repository root."""
        return self.path.relative_to(ROOT).as_posix()

    @cached_property
    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()

    @cached_property
    def blocks(self) -> list[Block]:
        blocks: list[Block] = []
        start: int | None = None
        lang = ""
        body: list[str] = []
        indent = ""  # a block inside a list item is indented with it
        for number, line in enumerate(self.lines, start=1):
            if start is None:
                fence = re.match(r"^( *)```(\S*)\s*$", line)
                if fence:
                    start, indent, lang, body = number, fence.group(1), fence.group(2), []
            elif line.rstrip() == indent + "```":
                blocks.append(Block(self.name, lang, start, "\n".join(body) + "\n"))
                start = None
            else:
                body.append(line.removeprefix(indent))
        assert start is None, f"{self.name}:{start}: unclosed code block"
        return blocks

    def prose(self) -> list[tuple[int, str]]:
        """(line number, line) of every line outside code blocks."""
        inside = {n for b in self.blocks for n in range(b.line, b.line + b.text.count("\n") + 2)}
        return [(n, line) for n, line in enumerate(self.lines, start=1) if n not in inside]

    def headings(self) -> list[str]:
        """The titles of its headings, in order."""
        return [m.group(1).strip() for _, line in self.prose() if (m := HEADING.match(line))]

    def section(self, title: str, level: int = 2) -> list[tuple[int, str]]:
        """The prose lines under a heading, up to the next heading of the same or a higher
        level."""
        lines: list[tuple[int, str]] = []
        found = False
        for number, line in self.prose():
            heading = re.match(r"^(#+) (.*)$", line)
            if heading and len(heading.group(1)) <= level:
                if found:
                    break
                found = heading.group(2).strip() == title and len(heading.group(1)) == level
                continue
            if found:
                lines.append((number, line))
        assert found, f"{self.name} has no heading {'#' * level} {title}"
        return lines


HEADING = re.compile(r"^#+ (.*)$")


def spans(text: str) -> list[str]:
    """The inline code spans of a line (table cells escape `|` as `\\|`)."""
    return [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", text)]


def tables(lines: list[tuple[int, str]]) -> list[tuple[list[str], list[Row]]]:
    """Markdown tables as (header cells, [(line number, cells)])."""
    found: list[tuple[list[str], list[Row]]] = []
    current: list[Row] = []
    for number, line in [*lines, (0, "")]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            current.append((number, cells))
        elif current:
            header, _separator, *rows = current
            found.append((header[1], rows))
            current = []
    return found


def table(lines: list[tuple[int, str]], first_header: str) -> list[Row]:
    """The rows of the table whose first column is named ``first_header``."""
    for header, rows in tables(lines):
        if header[0] == first_header:
            return rows
    raise AssertionError(f"no table with a {first_header!r} column")


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"[`*_]", "", title).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def shell_commands(line: str) -> list[list[str]]:
    """The commands of a shell line: each command of a list or pipeline, without
    redirections and leading environment assignments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in ("|", "||", "&&", ";", "&"):
            commands.append([])
        elif token in (">", ">>", "<", ">&", "&>"):
            next(tokens, None)  # the file name
        else:
            commands[-1].append(token)
    # Leading VARIABLE=value words set the environment of the command, as in a shell.
    commands = [c[next((i for i, w in enumerate(c) if "=" not in w), len(c)) :] for c in commands]
    return [c for c in commands if c]


def tagger_commands(line: str) -> list[list[str]]:
    """The tagger commands of a shell line (see ``shell_commands``)."""
    return [c for c in shell_commands(line) if c[0] == "tagger"]


def shell_lines(page: Page) -> list[tuple[int, str]]:
    """(line number, line) of every command line of the page's ```sh blocks; a line that
    ends with ``\\`` goes on, as in a shell."""
    found: list[tuple[int, str]] = []
    for block in page.blocks:
        if block.lang != "sh":
            continue
        pending: tuple[int, str] | None = None
        for index, line in enumerate(block.text.splitlines(), start=1):
            if pending is None and (not line.strip() or line.lstrip().startswith("#")):
                continue
            number, text = pending if pending is not None else (block.line + index, "")
            text += line.rstrip().removesuffix("\\")
            if line.rstrip().endswith("\\"):
                pending = (number, text + " ")
                continue
            pending = None
            found.append((number, re.sub(r"\s+#.*$", "", text)))
    return found

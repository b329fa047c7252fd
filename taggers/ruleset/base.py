"""What every section's compiling shares (problems, names, event types, durations,
expressions within the directory's budget), and the constants they read: params, word
lists and the time zone.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections import ChainMap
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taggers.durations import DurationError, parse_duration
from taggers.events import EVENT_TYPES, to_epoch_ms
from taggers.expr import (
    BOOL,
    DOUBLE,
    DURATION,
    INT,
    STRING,
    TIMESTAMP,
    CompiledExpr,
    ExprError,
    Type,
    compile_expression,
    list_of,
    object_of,
)
from taggers.expr.words import normalised
from taggers.localdays import DEFAULT_ZONE, LocalDays, UnknownZoneError, load_zone, zone_names
from taggers.rulefile import RuleFile
from taggers.ruleset.model import (
    _LOOKS_LIKE_TIME,
    _UNKNOWN_NAME,
    ANY,
    EVENT_TYPE,
    LIST_SUFFIX,
    MAX_EXPRESSION_CHARS,
    MAX_LIST_BYTES,
    MAX_LIST_WORDS,
    MAX_PROBLEMS,
    MAX_WORD_CHARS,
    RESERVED_NAMES,
    Aggregate,
)
from taggers.yaml_source import (
    Path_,
    Position,
    Problem,
    RuleSetError,
    SourceMap,
    TooLargeError,
    read_bounded,
)


class BaseCompiler:
    """What every section's compiling shares: the problems found so far, declared names,
    event types, durations and expressions (within the directory's budget)."""

    def __init__(self, files: list[tuple[RuleFile, SourceMap]], directory: Path) -> None:
        self.files = files
        self.directory = directory
        self.problems: list[Problem] = []
        self.aggregates: dict[str, Aggregate] = {}
        self.lists: dict[str, tuple[str, ...]] = {}
        self.list_bytes_left = MAX_LIST_BYTES
        self.list_words_left = MAX_LIST_WORDS
        self.params: dict[str, Any] = {}
        self.names: dict[str, Type] = {}
        self.seen: dict[tuple[str, str], Position] = {}
        self.transition_alerts: list[tuple[str, Position]] = []
        self.chars_left = MAX_EXPRESSION_CHARS
        self.constants: dict[str, Any] = {}
        self.days = LocalDays(UTC, DEFAULT_ZONE)  # the rule set's days (compile_timezone)
        self.list_places: dict[str, tuple[Position, ...]] = {}  # where each entry is written

    def problem(self, where: Position, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(where, message, hint))
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems.append(
                Problem(where, f"stopped after {MAX_PROBLEMS} problems", "fix these first")
            )
            raise RuleSetError(self.problems)

    def declare(self, section: str, name: str, source: SourceMap, path: Path_) -> bool:
        """Record a name; report a duplicate across files. False if it was a duplicate."""
        where = source.key(path)
        if name in RESERVED_NAMES and section in ("param", "aggregate"):
            self.problem(where, f"{name!r} is a name of the language", RESERVED_NAMES[name])
            return False
        first = self.seen.get((section, name))
        if first is not None:
            self.problem(where, f"duplicate {section} name {name!r}", f"first defined at {first}")
            return False
        self.seen[(section, name)] = where
        return True

    def event_types(self, value: str | list[str], where: Position) -> frozenset[str] | None:
        types = [value] if isinstance(value, str) else value
        if ANY in types:
            return None
        for name in types:
            if name not in EVENT_TYPES:
                close = difflib.get_close_matches(name, EVENT_TYPES, n=1)
                if close:
                    self.problem(
                        where, f"unknown event type {name!r}", f"did you mean {close[0]!r}?"
                    )
        return frozenset(types)

    def duration(self, text: str, where: Position) -> int | None:
        try:
            return parse_duration(text)
        except DurationError as error:
            self.problem(where, str(error))
            return None

    def expression(
        self,
        text: str,
        source: SourceMap,
        path: Path_,
        *,
        expect: Type | None,
        with_event: bool = False,
        names: Mapping[str, Type] | None = None,
        unknown: Callable[[str], str | None] | None = None,
    ) -> CompiledExpr | None:
        """Compile an expression reading the rule set's names (or ``names``); a problem
        is reported where it is, with ``unknown(name)`` as the hint for an unknown name."""
        if names is None:
            # Read, never copied: a copy per expression would cost names x expressions.
            names = ChainMap({"event": EVENT_TYPE}, self.names) if with_event else self.names
        self.chars_left -= len(text)
        if self.chars_left < 0:
            if self.chars_left + len(text) >= 0:  # said once, where it ran out
                self.problem(
                    source.at(path),
                    f"the expressions together have more than {MAX_EXPRESSION_CHARS} characters",
                    "rule sets need far fewer; look for generated or repeated rules",
                )
            return None
        try:
            return compile_expression(
                text, names, expect=expect, constants=self.constants, zone=self.days.zone
            )
        except ExprError as error:
            hint = error.hint
            unknown_name = _UNKNOWN_NAME.match(error.message)
            if unknown is not None and unknown_name is not None:
                hint = unknown(unknown_name.group(1)) or hint
            elif not with_event and error.message.startswith("unknown name 'event'"):
                hint = "`event` is only available in rules with `upon:` (per-event rules)"
            self.problem(source.at(path).offset(text, error.offset), error.message, hint)
            return None
        except Exception as error:  # a bug reached by this text: its problem, not a crash
            self.problem(source.at(path), f"cannot compile this expression: {failure(error)}")
            return None


class ConstantsCompiler(BaseCompiler):
    """The time zone, params and word lists: the constants expressions read."""

    def compile_timezone(self) -> None:
        """The rule set's time zone: set by at most one file (or by several that agree)."""
        found = [(f.timezone, s) for f, s in self.files if f.timezone is not None]
        if not found:
            return
        (name, source), *others = found
        first = source.at(("timezone",))
        for other_name, other in others:
            if other_name != name:
                self.problem(
                    other.at(("timezone",)),
                    f"timezone {other_name!r} disagrees with {name!r}",
                    f"a rule set has one time zone; it is set at {first}",
                )
        try:
            zone = load_zone(name)
        except UnknownZoneError:
            close = difflib.get_close_matches(name, zone_names(), n=1)
            self.problem(
                first,
                f"unknown time zone {name!r}",
                f"did you mean {close[0]!r}?" if close else "an IANA name: Asia/Shanghai, UTC",
            )
            return
        self.days = LocalDays(zone, name)

    def compile_params(self) -> None:
        for rule_file, source in self.files:
            for name, value in rule_file.params.items():
                path: Path_ = ("params", name)
                if not self.declare("param", name, source, path):
                    continue
                found = self.param(value, source.at(path))
                if found is not None:
                    self.params[name], self.names[name] = found

    def param(
        self, value: bool | int | float | str | datetime, where: Position
    ) -> tuple[Any, Type] | None:
        """A parameter's value and type: strings that are durations (60d) become
        durations, and ISO-8601 times with an offset (quoted or not) timestamps."""
        if isinstance(value, bool):
            return value, BOOL
        if isinstance(value, int):
            return value, INT
        if isinstance(value, float):
            return value, DOUBLE
        if isinstance(value, datetime):
            value = value.isoformat()  # YAML's reading of an unquoted time: checked alike
        try:
            return parse_duration(value), DURATION
        except DurationError:
            pass
        if not _LOOKS_LIKE_TIME.match(value):
            return value, STRING
        try:
            return to_epoch_ms(value), TIMESTAMP
        except ValueError as error:
            self.problem(where, str(error), "a timestamp param: 2026-06-18T00:00:00+08:00")
            return None

    def compile_lists(self) -> None:
        for rule_file, source in self.files:
            for name, entry in rule_file.lists.items():
                path: Path_ = ("lists", name)
                if not self.declare("list", name, source, path):
                    continue
                if isinstance(entry, list):
                    words = tuple(entry)
                    where = source.at(path)
                    places = tuple(source.at((*path, i)) for i in range(len(words)))
                else:
                    where = source.at((*path, "file"))
                    found = self.list_file(entry.file, where)
                    if found is None:
                        continue
                    words, places = found
                if self.list_bounded(words, where):
                    self.lists[name] = words
                    self.list_places[name] = places
        self.names["lists"] = object_of({name: list_of(STRING) for name in self.lists})
        self.constants = {"lists": self.lists, **self.params}  # final from here on

    def list_file(
        self, name: str, where: Position
    ) -> tuple[tuple[str, ...], tuple[Position, ...]] | None:
        """The words of a list file: a .txt file inside the rule directory (so that the
        directory's version covers it and a reload sees it change), regular, bounded."""
        try:
            data = read_bounded(self.directory / name, self.list_bytes_left, self.directory)
            self.list_bytes_left -= len(data)
            lines = data.decode("utf-8").splitlines()
        except TooLargeError:
            self.problem(
                where,
                f"word list {name!r} is too large: the lists together may have"
                f" {MAX_LIST_BYTES} bytes",
                "keep what the rules need; split a list the rules do not read whole",
            )
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problem(
                where,
                f"cannot read word list: {error}",
                "a word list is a UTF-8 text file inside the rule directory",
            )
            return None
        if not name.endswith(LIST_SUFFIX):
            self.problem(
                where,
                f"a word list is a {LIST_SUFFIX} file, not {name!r}",
                f"rename it, e.g. lists/words{LIST_SUFFIX}",
            )
            return None
        shown = str(self.directory / name)
        found = [
            (word, Position(shown, number, 1))
            for number, line in enumerate(lines, 1)
            if (word := line.split("#", 1)[0].strip())
        ]
        return tuple(w for w, _ in found), tuple(p for _, p in found)

    def list_bounded(self, words: tuple[str, ...], where: Position) -> bool:
        self.list_words_left -= len(words)
        if self.list_words_left < 0:
            self.problem(
                where,
                f"too many words: the word lists together may have {MAX_LIST_WORDS}"
                f" (this one has {len(words)})",
                "keep what the rules need",
            )
            return False
        long = next((w for w in words if len(w) > MAX_WORD_CHARS or _reads_long(w)), None)
        if long is not None:
            self.problem(
                where,
                f"a word list's words are at most {MAX_WORD_CHARS} characters, as read"
                f" (full-width and compatibility forms spelt out): {long[:20]!r}…",
            )
            return False
        return True


def _reads_long(word: str) -> bool:
    """Whether a word is longer than ``MAX_WORD_CHARS`` as texts are searched for it
    (``normalised``: a compatibility character such as ﷺ spells out as 18): the bound on
    ``contains_any``'s cost is on the lengths it looks for. Only words NFKC changes can
    grow, so the others cost one quick check."""
    if word.isascii() or unicodedata.is_normalized("NFKC", word):
        return False
    return len(normalised(word)) > MAX_WORD_CHARS


def said(items: list[str]) -> str:
    """Items as a sentence says them: ``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def failure(error: Exception) -> str:
    """An unexpected exception, said in one bounded line."""
    return f"{type(error).__name__}: {error}"[:200]

"""What the commands of ``tagger`` share: finding and loading the rules, reading input
lines, and the argument types of their options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, TypeAlias

from streams.settings import load_settings
from taggers.events import to_epoch_ms
from taggers.ruleset import RuleSet, load_rules
from taggers.yaml_source import RuleSetError

if TYPE_CHECKING:
    # The object ``add_subparsers`` returns, to which each command module adds its own.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

RULES_HELP: Final = "rule directory (default: $TAGGER_RULES_DIR, ./rules)"


def rules_dir(given: str | None) -> Path:
    """The rule directory given on the command line, else the configured one."""
    return Path(given) if given else load_settings().resolved_rules_dir()


def load_or_report(directory: Path, err: IO[str]) -> RuleSet | None:
    """The rule set in ``directory``; None, with each problem written to ``err``, if it
    does not load."""
    try:
        return load_rules(directory)
    except RuleSetError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=err)
        print(f"{len(error.problems)} problem(s) in {directory}; nothing was loaded", file=err)
        return None


def input_lines(path: str) -> Iterator[bytes]:
    """The lines of a file, or of standard input for ``-``."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with Path(path).open("rb") as handle:
        yield from handle


def moment(text: str) -> int:
    """Epoch ms from ISO-8601 with a time zone, or from epoch ms written as digits."""
    return to_epoch_ms(int(text) if text.isdigit() else text)


def fraction(text: str) -> float:
    """An option's value between 0 and 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def start_time(text: str) -> str:
    """``now`` or an ISO-8601 time with a time zone (checked here, resolved when run)."""
    if text != "now":
        try:
            to_epoch_ms(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "must be 'now' or an ISO-8601 time with a time zone, e.g. 2026-01-01T00:00:00Z"
            ) from None
    return text


def positive(text: str) -> int:
    """An option's whole number, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

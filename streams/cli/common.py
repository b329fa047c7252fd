"""What the commands of ``tagger`` share: how a command is declared (help, defaults, an
example), naming and loading the rule directory, reading from Redis, reading input lines,
and the argument types of their options."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, TypeAlias

from streams.settings import load_settings
from streams.work_progress import ProgressLine
from taggers.events import to_epoch_ms
from taggers.ruleset import RuleSet, load_rules
from taggers.yaml_source import RuleSetError

if TYPE_CHECKING:
    from streams.redis_store import RedisStore

    # The object ``add_subparsers`` returns, to which each command module adds its own.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

RULES_DEFAULT: Final = "default: $TAGGER_RULES_DIR, else ./rules, else the bundled pack"
RULES_HELP: Final = f"the rule directory ({RULES_DEFAULT})"
EXAMPLE: Final = "example:"  # how each command's epilog starts its example lines


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that keeps the epilog's lines (the examples) as written, and ends an option's
    help with its default when it has one the text does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if text == argparse.SUPPRESS or "default" in text or _no_default(action):
            return text
        return f"{text} (default: %(default)s)"


def _no_default(action: argparse.Action) -> bool:
    """Whether an option has no default worth showing: a flag (off unless given), a
    required one, or one whose default is None (its help says what happens then)."""
    return action.nargs == 0 or action.required or action.default in (None, argparse.SUPPRESS)


def command(
    commands: Commands, name: str, *, help: str, example: str | Sequence[str]
) -> argparse.ArgumentParser:
    """Add the (sub)command ``name``: its one-line ``help`` (also its description), and an
    epilog of example invocations, each a full ``tagger ...`` line (tests run them through
    the parser, so they stay real)."""
    examples = [example] if isinstance(example, str) else list(example)
    epilog = "\n".join([EXAMPLE, *(f"  {line}" for line in examples)])
    return commands.add_parser(
        name, help=help, description=help, epilog=epilog, formatter_class=HelpFormatter
    )


def add_rules_option(parser: argparse.ArgumentParser, help: str = RULES_HELP) -> None:
    """``--rules DIR``: how every command names the rule directory it works on."""
    parser.add_argument("--rules", metavar="DIR", help=help)


def add_rules_positional(parser: argparse.ArgumentParser) -> None:
    """The older spelling ``tagger rules check DIR``, kept next to ``--rules DIR`` for the
    scripts and runbooks that name the directory so (see ``given_rules``)."""
    parser.add_argument(
        "dir", nargs="?", metavar="DIR", help="the same as --rules DIR (the older spelling)"
    )


def given_rules(args: argparse.Namespace) -> str | None:
    """The rule directory given as ``--rules DIR`` or as the positional DIR (one of them:
    both, naming different directories, is an error)."""
    positional: str | None = getattr(args, "dir", None)
    option: str | None = args.rules
    if positional and option and Path(positional) != Path(option):
        print(
            f"tagger: name the rule directory once: {positional} or --rules {option}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return option or positional


def add_progress_option(parser: argparse.ArgumentParser, auto: str) -> None:
    """``--progress`` / ``--no-progress``: whether to show the progress of the work on
    standard error; unset, ``auto`` says when (see ``progress_line``)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"show progress, rate and time left on standard error (default: {auto})",
    )


def progress_line(
    chosen: bool | None, label: str, total: float | None, *, auto: bool
) -> ProgressLine | None:
    """The progress line to draw on standard error, or None: as ``--progress`` chose, else
    ``auto`` (the command's own "when a terminal would show it")."""
    if not (auto if chosen is None else chosen):
        return None
    return ProgressLine(sys.stderr, label, total, terminal=sys.stderr.isatty())


def file_size(path: str) -> int | None:
    """The size of an input (``-``: standard input, when it is a file), None if unknown."""
    try:
        info = os.fstat(sys.stdin.fileno()) if path == "-" else os.stat(path)
    except (OSError, ValueError):  # no such file, or a standard input with no descriptor
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


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


def read_from_redis(given: str | None, read: Callable[[RuleSet, RedisStore, str], int]) -> int:
    """Run ``read`` (a command's work: its exit code) with the rule set named by ``given``,
    a store on the configured Redis, and that Redis's address for messages (no password).
    A rule set that does not load, or a Redis that cannot be read, is printed and exits 1."""
    import redis  # noqa: PLC0415  (the commands that never read Redis start without it)

    from streams.redis_store import RedisStore, client_for, redacted  # noqa: PLC0415

    settings = load_settings()
    rules = load_or_report(rules_dir(given), sys.stderr)
    if rules is None:
        return 1
    where = redacted(settings.redis_url)
    try:
        return read(rules, RedisStore(client_for(settings), prefix=settings.redis_prefix), where)
    except redis.RedisError as error:  # its text names host and port, never the password
        print(f"error: cannot read from Redis at {where}: {error}", file=sys.stderr)
        return 1


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

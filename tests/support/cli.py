"""What the tests of ``tagger``'s command line share: walking its parser tree, and the
one spelling of a rule directory that the docs and the examples keep to."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from streams.cli.common import EXAMPLE


def older_rules_spelling(parsed: argparse.Namespace) -> bool:
    """Whether a parsed command names its rule directory the older way: the positional
    DIR of ``rules check``, ``test`` and ``status``, or ``rules diff OLD_DIR NEW_DIR``
    (kept for old scripts; the docs and examples say ``--rules DIR``, ``--against``)."""
    return bool(getattr(parsed, "dir", None) or getattr(parsed, "dirs", None))


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (none for a command without any)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every (sub)command under ``parser``, at any depth, not ``parser`` itself."""
    for child in subparsers(parser).values():
        yield child
        yield from walk(child)


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The example lines of a command's epilog: the indented lines after ``example:``."""
    lines = (parser.epilog or "").splitlines()
    if EXAMPLE not in lines:
        return []
    after = lines[lines.index(EXAMPLE) + 1 :]
    return [line.strip() for line in after if line.startswith("  ") and line.strip()]


def help_problems(parser: argparse.ArgumentParser) -> list[str]:
    """What a command's help lacks: an example, a help text per option and positional,
    and the default of every option that takes a value and may be left out."""
    problems = [] if examples(parser) else [f"{parser.prog}: no {EXAMPLE} in its epilog"]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            problems.append(f"{parser.prog} {name}: no help")
            continue
        shown = formatter._expand_help(action) if action.help != argparse.SUPPRESS else ""
        takes_value = action.nargs != 0 and not isinstance(action, argparse._VersionAction)
        optional = action.option_strings and not action.required
        if takes_value and optional and "default" not in shown:
            problems.append(f"{parser.prog} {name}: its help does not say its default")
    return problems

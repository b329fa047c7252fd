"""The ``tagger`` parser, made of each command module's subparsers, and its entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from streams.cli import broker, lookup, replay, rules
from streams.cli.common import EXAMPLE, HelpFormatter
from streams.core_build import core_description
from streams.settings import SettingsError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tagger``."""
    parser = argparse.ArgumentParser(
        prog="tagger",
        description="Real-time user tagging engine (each command's --help has an example)",
        epilog=f"{EXAMPLE}\n  tagger demo\n  tagger rules check --rules rules/",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=version_line(), help="print the version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order ``tagger --help`` lists them.
    for module in (rules, replay, broker, lookup):
        module.register(commands)
    return parser


def version_line() -> str:
    """``tagger --version``: the package's version and which build of the core runs."""
    try:
        installed = version("realtime-tagger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "(not installed)"
    return f"tagger {installed}, {core_description()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tagger`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as error:
        print(f"tagger {args.command}: bad settings: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error. Point stdout at devnull so
        # that Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code

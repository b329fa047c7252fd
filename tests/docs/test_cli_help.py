"""``tagger --help`` at every level: each command says what it does and shows an example
that the parser accepts, and each option says what it is and its default."""

from __future__ import annotations

import argparse

import pytest

from streams.cli import build_parser
from streams.cli.common import HelpFormatter, add_rules_option, command
from tests.support.cli import examples, help_problems, older_rules_spelling, walk
from tests.support.markdown import shell_commands

PARSER = build_parser()
COMMANDS = list(walk(PARSER))
EXAMPLES = [(p.prog, line) for p in [PARSER, *COMMANDS] for line in examples(p)]


def test_the_walk_reaches_every_command() -> None:
    progs = {parser.prog for parser in COMMANDS}
    assert {"tagger replay", "tagger rules", "tagger rules diff", "tagger schema"} <= progs


@pytest.mark.parametrize("parser", COMMANDS, ids=[p.prog for p in COMMANDS])
def test_command_has_an_example_and_every_option_its_help_and_default(
    parser: argparse.ArgumentParser,
) -> None:
    assert help_problems(parser) == []


def test_the_check_finds_what_a_command_forgot() -> None:
    """A command added without its example, an option without help, an option with a
    value whose help hides its default: each is named."""
    root = argparse.ArgumentParser(prog="tagger")
    commands = root.add_subparsers()
    good = command(commands, "good", help="fine", example="tagger good --rules rules/")
    add_rules_option(good)
    good.add_argument("--rate", type=int, default=3, help="per second")  # shown by formatter
    bare = commands.add_parser("bare", formatter_class=HelpFormatter)
    bare.add_argument("--quiet", action="store_true")
    bare.add_argument("--limit", help="at most this many")
    bare.add_argument("--hidden", type=int, default=5, help=argparse.SUPPRESS)
    assert help_problems(good) == []
    assert help_problems(bare) == [
        "tagger bare: no example: in its epilog",
        "tagger bare --quiet: no help",
        "tagger bare --limit: its help does not say its default",
        "tagger bare --hidden: its help does not say its default",
    ]


def test_an_option_help_ends_with_its_default() -> None:
    (simulate,) = [p for p in COMMANDS if p.prog == "tagger simulate"]
    text = simulate.format_help()
    words = " ".join(text.split())  # as wrapped to any width
    assert "how many users (default: 1000)" in words
    assert "'now' for a history that ends now (default: 2026-01-01T00:00:00Z)" in words
    assert "\nexample:\n  tagger simulate --users 300 " in text


@pytest.mark.parametrize(("prog", "line"), EXAMPLES, ids=[f"{p}: {e}" for p, e in EXAMPLES])
def test_example_is_a_command_tagger_accepts(prog: str, line: str) -> None:
    """Each example runs its own command, parses, and names rule directories with
    ``--rules`` (the one spelling the docs use too)."""
    (command_words,) = [c for c in shell_commands(line) if c[:1] == ["tagger"]][-1:]
    if prog != "tagger":
        assert " ".join(command_words).startswith(prog), f"{prog}: example runs {line!r}"
    try:
        parsed = PARSER.parse_args(command_words[1:])
    except SystemExit:
        pytest.fail(f"{prog}: tagger rejects its example {line!r}")
    assert not older_rules_spelling(parsed), f"{prog}: {line!r}: name the rules with --rules"

"""``tagger rules graph``: the lifecycle of a rule directory as a picture."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from streams.cli.common import add_rules_option, command, load_or_report, rules_dir
from taggers.lifecycle_graph import mermaid, svg

if TYPE_CHECKING:
    from streams.cli.common import Commands

FORMATS = {"mermaid": mermaid, "svg": svg}


def register(rules_commands: Commands) -> None:
    """Add ``tagger rules graph``."""
    graph = command(
        rules_commands,
        "graph",
        help="draw the lifecycle: stages, transitions and their conditions",
        example=[
            "tagger rules graph",
            "tagger rules graph --rules rules/ --format svg > lifecycle.svg",
        ],
    )
    graph.description = (
        "Print the lifecycle of a rule directory as a picture: a Mermaid state diagram in a"
        " Markdown code block (GitHub and most Markdown viewers draw it), or an SVG image."
    )
    add_rules_option(graph)
    graph.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="mermaid",
        help="mermaid (Markdown with a Mermaid diagram) or svg",
    )
    graph.set_defaults(func=cmd_rules_graph)


def cmd_rules_graph(args: argparse.Namespace) -> int:
    """Print the lifecycle of a rule directory as Mermaid or SVG."""
    rules = load_or_report(rules_dir(args.rules), sys.stderr)
    if rules is None:
        return 1
    if rules.lifecycle is None:
        print(f"tagger rules graph: {rules.directory} has no lifecycle", file=sys.stderr)
        return 1
    sys.stdout.write(FORMATS[args.format](rules))
    return 0

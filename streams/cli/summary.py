"""The summary ``tagger replay`` writes at the end: every output kind, every stage and
every tag with how many users hold it, laid out in columns as ``ls`` lays out names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final
from unicodedata import east_asian_width

WIDTH: Final = 100  # the summary's width: it is read in terminals and in CI logs
INDENT: Final = "   "
GAP: Final = 3  # spaces between two columns


def columns(counts: Sequence[tuple[str, int]], width: int = WIDTH) -> list[str]:
    """``name  count`` cells, each count right-aligned after its name, filled down the
    columns (as ``ls``) in as many columns as fit in ``width`` (at least one)."""
    if not counts:
        return []
    names = max(shown_width(name) for name, _ in counts)
    digits = max(len(f"{n:,}") for _, n in counts)
    cell = names + 2 + digits
    across = max(1, (width - len(INDENT) + GAP) // (cell + GAP))
    down = -(-len(counts) // across)  # rows: ceiling division
    cells = [name + " " * (names - shown_width(name) + 2) + f"{n:>{digits},}" for name, n in counts]
    rows = [cells[row::down] for row in range(down)]
    return [INDENT + (" " * GAP).join(row).rstrip() for row in rows]


def shown_width(text: str) -> int:
    """Columns a terminal gives the text: two for a wide character (CJK: tag names such as
    ``interest_母婴``), one for the others."""
    return sum(2 if east_asian_width(char) in "WF" else 1 for char in text)


def by_count(counter: Counter[str]) -> list[tuple[str, int]]:
    """Most first, then by name: the same summary for the same input."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def section(title: str, counts: Sequence[tuple[str, int]], width: int = WIDTH) -> list[str]:
    """A titled block of columns; ``title: none`` when there is nothing to list."""
    if not counts:
        return [f"{title}: none"]
    return [f"{title} ({len(counts)}):", *columns(counts, width)]

"""docs/rules.md shows the default pack's lifecycle as ``tagger rules graph`` draws it."""

from __future__ import annotations

import pytest

from streams.cli import main
from taggers.bundled import BUNDLED_RULES
from tests.support import ROOT
from tests.support.markdown import Page

RULES_PAGE = Page(ROOT / "docs" / "rules.md")


def test_the_lifecycle_picture_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (block,) = [b for b in RULES_PAGE.blocks if b.lang == "mermaid"]
    assert main(["rules", "graph", "--rules", str(BUNDLED_RULES)]) == 0
    assert capsys.readouterr().out == f"```mermaid\n{block.text}```\n"

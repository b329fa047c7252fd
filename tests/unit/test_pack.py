"""The default pack with its params set otherwise than in rules/params.yaml: what its own
rule tests (rules/tests, run against the pack as shipped) cannot show."""

from __future__ import annotations

from pathlib import Path

from taggers.ruleset import load_rules
from taggers.ruletests import run_tests
from tests.support.core import edited_rules

BY_SPEND = """\
tests:
  - name: by spend, 5000 in 365 days make a gold member, whatever the points
    events:
      - {type: member_join, at: +0d}
      - {type: purchase, at: +1d, props: {amount: 3000}}
      - {type: purchase, at: +2d, props: {amount: 2500}}
      - {type: points_earned, at: +2d, props: {points: 100}}
    expect: {has_tags: [member_gold], lacks_tags: [member_silver, member_regular]}

  - name: by spend, the level falls as the spend leaves the 365-day window
    events:
      - {type: purchase, at: +0d, props: {amount: 6000}}
      - {type: purchase, at: +200d, props: {amount: 1200}}
    until: +370d
    expect: {has_tags: [member_silver], lacks_tags: [member_gold]}

  - name: by spend, points alone make no level above regular
    events:
      - {type: points_earned, at: +0d, props: {points: 30000}}
    expect: {has_tags: [member_regular], lacks_tags: [member_diamond, member_gold, member_silver]}
"""


def _results(directory: Path, tests: str) -> list[str]:
    folder = directory / "tests"
    folder.mkdir()
    (folder / "choice.yaml").write_text(tests, encoding="utf-8")
    return [
        f"{r.name}: {r.failures}" for r in run_tests(load_rules(directory), folder) if not r.passed
    ]


def test_member_level_by_spend(tmp_path: Path) -> None:
    edit = ("member_level_by: points", "member_level_by: spend ")
    rules = edited_rules(tmp_path / "rules", {"params.yaml": edit})
    assert _results(rules, BY_SPEND) == []


def test_member_level_by_points_ignores_spend(tmp_path: Path) -> None:
    rules = edited_rules(tmp_path / "rules")
    failed = _results(rules, BY_SPEND)
    assert len(failed) == 3  # as shipped, the level follows points

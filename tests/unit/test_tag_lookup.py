"""A tag asked for by name: the audience view answers 404 for a tag the rules cannot give
and no user holds (a typo), and stays 200 and empty for a known tag nobody holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.web import DataAccess
from streams.worker.views import DataViews
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.pipeline import Pipeline
from taggers.profile import Profile
from taggers.ruleset import RuleSet, load_rules
from taggers.store import MemoryStore
from taggers.tag_names import known_tags, tag_declared, unknown_tag
from tests.support.core import edited_rules, tag_record

RULES = load_rules(BUNDLED_RULES)


class _View:
    """What a Faust view's ``json`` is given, kept to be read."""

    def json(self, body: Any, status: int = 200, headers: Any = None) -> tuple[Any, int]:
        return body, status


def _members(
    rules: RuleSet, store: MemoryStore, tag: str, **query: str
) -> tuple[dict[str, Any], int]:
    views = DataViews(Pipeline(Engine(rules), store, 65536), store, DataAccess(None, True))
    request = SimpleNamespace(headers={}, query=query)
    answer: tuple[dict[str, Any], int] = asyncio.run(views.members(_View(), request, tag))
    return answer


def test_the_known_tags_are_the_plain_tags_and_the_families() -> None:
    known = known_tags(RULES)
    assert {"high_value", "nps_promoter", "source_<value>", "interest_<value>"} <= set(known)
    assert "source" not in known  # a family is not a tag of its own
    for name in ("high_value", "source_wecom", "interest_美妆", "repurchase_食品"):
        assert tag_declared(RULES, name), name
    for name in ("high_valu", "source", "source_", "sourcewecom", "vip"):
        assert not tag_declared(RULES, name), name


def test_a_family_with_listed_values_gives_those_tags_only(tmp_path: Path) -> None:
    listed = "    value: first_channel\n    values: [wecom, app]\n"
    edited = edited_rules(tmp_path / "rules", {"tags.yaml": ("    value: first_channel\n", listed)})
    rules = load_rules(edited)
    assert tag_declared(rules, "source_wecom") and not tag_declared(rules, "source_sms")
    assert {"source_app", "source_wecom"} <= set(known_tags(rules))
    assert "source_<value>" not in known_tags(rules)


def test_an_unknown_tag_is_named_with_the_closest_known_one() -> None:
    answer = unknown_tag(RULES, "high_valeu")
    assert answer["tag"] == "high_valeu" and answer["did_you_mean"] == "high_value"
    assert answer["error"].startswith("no tag 'high_valeu': the rules (version ")
    assert answer["error"].endswith("did you mean 'high_value'?")
    assert answer["tags"] == known_tags(RULES)
    far = unknown_tag(RULES, "zzzzzzzz")
    assert far["did_you_mean"] is None and "tags are: " in far["error"]
    assert "high_value" in far["error"]


def test_the_audience_view_answers_404_for_a_typo_and_200_for_a_known_empty_tag() -> None:
    store = MemoryStore(copies=True)
    store.save([Profile("u1", tags={"high_value": tag_record()})])
    body, status = _members(RULES, store, "high_valeu")
    assert status == 404 and body == unknown_tag(RULES, "high_valeu")
    # A known tag that nobody holds: an empty audience, not an error.
    for tag in ("koc", "interest_nothing_yet"):
        assert _members(RULES, store, tag) == ({"tag": tag, "members": [], "next": None}, 200)
    assert _members(RULES, store, "high_value")[0]["members"] == ["u1"]
    # Past the last member of a held tag: an empty page, still 200.
    assert _members(RULES, store, "high_value", after="u1")[1] == 200


@pytest.mark.parametrize("after", ["", "u1"])
def test_a_tag_the_rules_no_longer_give_is_served_while_users_hold_it(after: str) -> None:
    store = MemoryStore(copies=True)
    store.save([Profile(u, tags={"old_tag": tag_record()}) for u in ("u0", "u1")])
    body, status = _members(RULES, store, "old_tag", after=after)
    assert status == 200 and body["members"] == (["u0", "u1"] if not after else [])

"""Word lists in texts as operators read them: normalisation, matched words, excerpts,
and bounded cost on hostile texts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.expr.words import (
    MAX_EXCERPT_CHARS,
    MAX_MATCHED,
    WordMatcher,
    excerpt_of,
    normalised,
)
from taggers.ruleset import load_rules
from taggers.yaml_source import RuleSetError

SENSITIVE = ("投诉", "举报", "骗子", "假货", "退钱", "曝光", "12315")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("你们是骗子吧", ["骗子"]),
        ("你們是騙子吧", ["骗子"]),  # traditional script
        ("騙　子", ["骗子"]),  # an ideographic (full-width) space
        ("骗 子", ["骗子"]),
        ("骗-子", ["骗子"]),
        ("骗*子!", ["骗子"]),
        ("骗\u200b子", ["骗子"]),  # a zero-width space
        ("骗😀子", ["骗子"]),
        ("打１２３１５", ["12315"]),  # full-width digits
        ("1 2 3 1 5", ["12315"]),
        ("我要投-訴，還要舉報他們是騙子", ["投诉", "举报", "骗子"]),  # the list's order
        ("请问什么时候发货", []),
        ("骗", []),
        ("", []),
    ],
)
def test_words_are_found_as_people_read_them(text: str, found: list[str]) -> None:
    matcher = WordMatcher(SENSITIVE)
    assert matcher.matches(text) == found
    assert matcher.search(text) is bool(found)


def test_the_list_is_normalised_like_the_text() -> None:
    matcher = WordMatcher(("騙子", "ＱＱ号", "vx-Group", "!!!", ""))
    assert matcher.matches("加我qq号,进 VX group") == ["qq号", "vxgroup"]
    assert matcher.matches("骗子") == ["骗子"]
    assert list(matcher.order) == ["骗子", "qq号", "vxgroup"]  # nothing left: no word


def test_normalised_forms() -> None:
    assert normalised("ＡＢＣ　１２３") == "abc123"
    assert normalised("頭髮乾淨") == "头发干净"
    assert normalised("a_b-c d") == "abcd"


def test_matched_words_are_at_most_twenty() -> None:
    words = tuple(f"词{i:03d}" for i in range(100))
    matcher = WordMatcher(words)
    assert matcher.matches("".join(reversed(words))) == list(words[:MAX_MATCHED])


def test_the_excerpt_is_around_the_first_word_as_written() -> None:
    matcher = WordMatcher(SENSITIVE)
    text = "在吗" * 50 + "这家卖假貨，" + "别买了" * 50
    shown = excerpt_of(text, matcher, 20)
    assert shown is not None
    assert shown.startswith("…") and shown.endswith("…")
    assert "假貨" in shown  # the text as written, not normalised
    assert len(shown) == 22
    assert excerpt_of("短消息骗子", matcher, 20) == "短消息骗子"
    assert excerpt_of("无" * 30, matcher, 10) == "无" * 10 + "…"  # no word: the start
    assert excerpt_of("骗 子" + "。" * 30, matcher, 4) == "骗 子。…"
    assert excerpt_of(None, matcher, 10) is None
    assert excerpt_of("x", matcher, True) is None
    assert len(excerpt_of("x" * 2000, matcher, 10**9) or "") == MAX_EXCERPT_CHARS + 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=6), max_size=40))
def test_any_text_and_list_give_consistent_answers(text: str, words: list[str]) -> None:
    """Whatever Unicode a text or a list holds: no exception, ``search`` agrees with
    ``matches``, and both with a plain search of the normalised forms."""
    matcher = WordMatcher(words)
    keys = [w for w in dict.fromkeys(normalised(w) for w in words) if w]
    plain = [w for w in keys if w in normalised(text)]
    assert matcher.matches(text) == plain[:MAX_MATCHED]
    assert matcher.search(text) is bool(plain)
    shown = excerpt_of(text, matcher, 30)
    assert shown is not None and len(shown) <= 32


def test_the_longest_message_costs_milliseconds() -> None:
    """A 10,000-character message (the most an event carries) of what normalisation
    works hardest on: traditional script, full-width forms and punctuation to drop."""
    matcher = WordMatcher(tuple(f"词{i}号" for i in range(100_000)))
    text = ("騙，Ｑ　" * 2500)[:10_000]
    started = time.monotonic()
    for _ in range(10):
        assert not matcher.search(text)
        assert matcher.matches(text) == []
    excerpt_of(text + "詞99999號", matcher, 60)
    assert time.monotonic() - started < 2.0


def test_a_word_that_reads_longer_than_40_characters_is_refused(tmp_path: Path) -> None:
    """ﷺ is one character that reads as 18: three of them would make the matcher look for
    a 54-character length, past the bound its cost is reckoned on."""
    (tmp_path / "rules.yaml").write_text(
        "lists:\n  words: ['\ufdfa\ufdfa\ufdfa', 骗子]\n", encoding="utf-8"
    )
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    (problem,) = caught.value.problems
    assert "at most 40 characters, as read" in str(problem)
    (tmp_path / "rules.yaml").write_text(
        "lists:\n  words: ['\ufdfa\ufdfa', 骗子]\n", encoding="utf-8"
    )
    assert load_rules(tmp_path).lists["words"] == ("\ufdfa\ufdfa", "骗子")

"""Rule-test files get errors as good as rule files: file:line:column, a hint, the name it
probably meant, never pydantic's words or URLs; an unknown event type is an error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taggers.bundled import BUNDLED_RULES
from taggers.ruleset import load_rules
from taggers.ruletests import run_tests
from taggers.yaml_source import RuleSetError

RULES = load_rules(BUNDLED_RULES)


def _problems(directory: Path, text: str) -> list[str]:
    (directory / "a.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as raised:
        run_tests(RULES, directory)
    return [str(p).removeprefix(f"{directory}/") for p in raised.value.problems]


def test_a_misspelt_key_is_named_where_it_is_with_the_key_meant(tmp_path: Path) -> None:
    text = (
        "tests:\n"
        "  - name: t\n"
        "    events: [{type: purchase, props: {amount: 1}}]\n"
        "    expect: {has_aler: [win_back]}\n"
        "  - name: u\n"
        "    evnts: []\n"
    )
    assert _problems(tmp_path, text) == [
        "a.yaml:4:14: unknown key 'has_aler' (hint: did you mean 'has_alerts'?)",
        "a.yaml:5:5: missing key 'events' (hint: docs/rules.md (Testing a rule) shows it)",
        "a.yaml:5:5: missing key 'expect' (hint: docs/rules.md (Testing a rule) shows it)",
        "a.yaml:6:5: unknown key 'evnts' (hint: did you mean 'events'?)",
    ]


def test_names_the_rules_do_not_have_are_errors_with_the_name_meant(tmp_path: Path) -> None:
    text = (
        "tests:\n"
        "  - name: t\n"
        "    events: [{type: purchse}]\n"
        "    expect:\n"
        "      stage: activ\n"
        "      has_tags: [high_valu, repurchase_美妆, preferred_channel_app]\n"
        "      lacks_alerts: [win_bak]\n"
        "      details: {churn_risc: {}}\n"
        "      transitions: [new->actve, new]\n"
        "      values: {oders: 1}\n"
    )
    assert _problems(tmp_path, text) == [
        "a.yaml:3:21: unknown event type 'purchse' (hint: did you mean 'purchase'?)",
        "a.yaml:5:14: unknown stage 'activ' (hint: did you mean 'active'?)",
        "a.yaml:6:18: unknown tag 'high_valu' (hint: did you mean 'high_value'?)",
        "a.yaml:7:22: unknown alert 'win_bak' (hint: did you mean 'win_back'?)",
        "a.yaml:8:17: unknown alert 'churn_risc' (hint: did you mean 'churn_risk'?)",
        "a.yaml:9:21: unknown stage 'actve' (hint: did you mean 'active'?)",
        "a.yaml:9:33: 'new' is not a stage change (hint: write from->to)",
        "a.yaml:10:16: unknown aggregate 'oders' (hint: did you mean 'orders'?)",
    ]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ("{type: purchase, at: +3x, props: {amount: 1}}", "a.yaml:3:35: at: bad duration '3x'"),
        (
            "{type: purchase, props: {amount: abc}}",
            "a.yaml:3:14: props of purchase: amount: must be a number, not the text 'abc'",
        ),
        ("{type: purchase, props: {}}", "a.yaml:3:14: props of purchase: amount: missing"),
        ("{type: purchase, props: []}", "a.yaml:3:38: expected a mapping of keys to values"),
    ],
)
def test_an_event_that_cannot_be_read_is_an_error_where_it_is(
    tmp_path: Path, event: str, problem: str
) -> None:
    text = f"tests:\n  - name: t\n    events: [{event}]\n    expect: {{}}\n"
    (found,) = _problems(tmp_path, text)
    assert found.startswith(problem)
    assert "pydantic" not in found and "Input should" not in found


def test_every_file_is_checked_before_any_test_runs(tmp_path: Path) -> None:
    good = "tests:\n  - name: ok\n    events: [{type: view}]\n    expect: {stage: prospect}\n"
    (tmp_path / "a.yaml").write_text(good.replace("view", "veiw"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(good.replace("prospect", "prospekt"), encoding="utf-8")
    with pytest.raises(RuleSetError) as raised:
        run_tests(RULES, tmp_path)
    assert [p.where.file.rsplit("/", 1)[-1] for p in raised.value.problems] == ["a.yaml", "b.yaml"]
    (tmp_path / "a.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(good, encoding="utf-8")
    assert [r.passed for r in run_tests(RULES, tmp_path)] == [True, True]


# --- no malformed file crashes the runner or shows pydantic's words ------------------------

KEYS = [
    "tests", "name", "user", "start", "events", "until", "expect", "type", "at", "channel",
    "props", "stage", "tags", "has_tags", "lacks_tags", "alerts", "has_alerts",
    "lacks_alerts", "transitions", "values", "details", "amount", "has_aler", "",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "+0d",
            "+3d",
            "-1h",
            "+",
            "+0x",
            "2026-01-01T00:00:00Z",
            "purchase",
            "view",
            "active",
            "win_back",
            "high_value",
            "new->active",
            "2026-13-45",
            "x" * 300,
        ]
    ),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=25,
)


NAMES = st.sampled_from(["active", "activ", "win_back", "high_value", "orders", "x", ""])
TIMES = st.one_of(
    st.sampled_from(["+0d", "+3d", "-1h", "+", "+0x", "2026-01-01T00:00:00Z", "2026-13-45"]),
    SCALARS,
)
EVENTS = st.fixed_dictionaries(
    {"type": st.sampled_from(["purchase", "view", "message", "purchse", ""])},
    optional={
        "at": TIMES,
        "props": st.one_of(
            st.dictionaries(st.sampled_from(["amount", "text", "category", "x"]), SCALARS),
            VALUES,
        ),
        "channel": st.one_of(st.sampled_from(["app", "wecom"]), SCALARS),
        "user": SCALARS,
    },
)
EXPECT = st.fixed_dictionaries(
    {},
    optional={
        "stage": NAMES,
        "has_tags": st.lists(NAMES, max_size=2),
        "lacks_alerts": st.lists(NAMES, max_size=2),
        "transitions": st.lists(st.sampled_from(["new->active", "new", "a->b->c"]), max_size=2),
        "values": st.dictionaries(NAMES, SCALARS, max_size=2),
        "details": st.dictionaries(NAMES, st.dictionaries(NAMES, SCALARS), max_size=1),
    },
)
# Tests that are nearly right, so that the malformed parts get past the first checks and
# reach the names, times and events; and documents of any shape.
TESTS = st.fixed_dictionaries(
    {"name": st.just("t"), "events": st.lists(st.one_of(EVENTS, VALUES), max_size=3)},
    optional={"expect": st.one_of(EXPECT, VALUES), "until": TIMES, "start": TIMES},
)
DOCUMENTS = st.one_of(
    VALUES,
    st.builds(lambda tests: {"tests": tests}, st.lists(st.one_of(TESTS, VALUES), max_size=3)),
    st.builds(lambda tests: {"tests": tests}, st.lists(TESTS, min_size=1, max_size=3)),
)
LEAKS = ("pydantic", "Input should", "Field required", "validation error", "[type=")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
def test_no_malformed_test_file_crashes_the_runner_or_leaks_pydantic(document: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        # JSON is YAML; text that does not encode (lone surrogates) is no file anyone writes.
        text = json.dumps(document, ensure_ascii=False)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return
        (directory / "a.yaml").write_bytes(data)
        try:
            results = run_tests(RULES, directory)
        except RuleSetError as error:
            shown = [str(p) for p in error.problems]
            assert shown
            assert all(str(p).startswith(f"{directory}/a.yaml:") for p in error.problems)
        else:
            shown = [line for r in results for line in r.failures]
        for line in shown:
            assert not any(leak in line for leak in LEAKS), line

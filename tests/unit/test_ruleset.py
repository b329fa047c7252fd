"""Rule files: the default pack compiles; every kind of mistake is reported at file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from taggers.bundled import BUNDLED_RULES
from taggers.ruleset import load_rules
from taggers.yaml_source import RuleSetError

BASE = """\
aggregates:
  orders: {count: purchase}
  spend_90d: {sum: props.amount, of: purchase, window: 90d}
"""


def problems(tmp_path: Path, **files: str) -> list[str]:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


def test_the_default_pack_compiles() -> None:
    rules = load_rules(BUNDLED_RULES)
    assert rules.lifecycle is not None
    assert list(rules.lifecycle.stages) == [
        "prospect",
        "engaged",
        "new",
        "active",
        "loyal",
        "dormant",
        "churned",
    ]
    assert {"high_value", "rfm_important_value", "nps_promoter", "source", "interest"} <= {
        t.name for t in rules.tags
    }
    assert set(rules.groups["rfm"]) and len(rules.groups["rfm"]) == 8
    assert {
        "churn_risk",
        "first_repurchase_nudge",
        "koc_candidate",
        "coupon_unused",
        "new_member_no_order",
        "sensitive_message",
        "staff_sensitive_message",
        "friend_lost",
        "new_friend_follow_up",
        "win_back",
    } <= set(rules.alerts)
    assert {"投诉", "举报", "骗子"} <= set(rules.lists["sensitive_words"])
    assert len(rules.version) == 12


def test_the_version_is_a_content_hash(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    first = load_rules(tmp_path).version
    assert load_rules(tmp_path).version == first
    (tmp_path / "a.yaml").write_text(BASE + "  views: {count: view}\n", encoding="utf-8")
    assert load_rules(tmp_path).version != first


def test_unknown_name_points_at_the_name_with_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + 'tags:\n  big: {when: "oders >= 1"}\n')
    assert found == ["a.yaml:5:16: unknown name 'oders' (hint: did you mean 'orders'?)"]


def test_type_error_in_an_expression(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "tags:\n  big:\n    when: spend_90d >= 'lots'\n")
    assert len(found) == 1
    assert found[0].startswith("a.yaml:6:")
    assert "string" in found[0]


def test_a_condition_must_be_true_or_false(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "tags:\n  big: {when: spend_90d}\n")
    assert found[0].startswith("a.yaml:5:15:")


def test_duplicate_names_in_one_file(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "  orders: {count: view}\n")
    assert found == [
        "a.yaml:4:3: duplicate name 'orders' (hint: each name may appear once; rename or remove"
        " one of them)"
    ]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE, b="aggregates:\n  orders: {count: view}\n")
    assert found == [
        "b.yaml:2:3: duplicate aggregate name 'orders' (hint: first defined at a.yaml:2:3)"
    ]


def test_bad_duration(tmp_path: Path) -> None:
    found = problems(
        tmp_path, a="aggregates:\n  spend: {sum: props.amount, of: purchase, window: 90x}\n"
    )
    assert len(found) == 1
    assert found[0].startswith("a.yaml:2:52: bad duration '90x'")


def test_unreachable_stage(tmp_path: Path) -> None:
    lifecycle = """\
lifecycle:
  initial: prospect
  stages: {prospect: 潜在, new: 新客, vip: 贵宾}
  transitions:
    - {from: prospect, to: new, when: "orders >= 1"}
"""
    found = problems(tmp_path, a=BASE, b=lifecycle)
    assert found == [
        "b.yaml:3:35: stage 'vip' is unreachable: no transition leads to it"
        " (hint: add a transition with `to: vip` or remove the stage)"
    ]


def test_unknown_stage_with_a_suggestion(tmp_path: Path) -> None:
    lifecycle = """\
lifecycle:
  initial: prospect
  stages: {prospect: 潜在, new: 新客}
  transitions:
    - {from: prospekt, to: new, when: "orders >= 1"}
"""
    found = problems(tmp_path, a=BASE, b=lifecycle)
    assert "b.yaml:5:14: unknown stage 'prospekt' (hint: did you mean 'prospect'?)" in found


def test_unknown_key_is_reported_at_the_key(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "tags:\n  big:\n    whenn: orders > 1\n")
    assert "a.yaml:6:5: unknown key 'whenn' (hint: did you mean 'when'?)" in found


def test_unknown_key_hints_at_the_keys_of_its_own_section(tmp_path: Path) -> None:
    text = (
        "aggregates:\n  orders: {count: purchase, windw: 30d}\n"
        "lifecycle:\n  initial: a\n  stages: {a: A}\n  transitions:\n"
        "    - {from: a, to: a, when: 'true', alrt: x}\n"
        "tags:\n  big: {when: orders > 1, colour: red}\n"
    )
    assert problems(tmp_path, a=text) == [
        "a.yaml:2:29: unknown key 'windw' (hint: did you mean 'window'?)",
        "a.yaml:7:38: unknown key 'alrt' (hint: did you mean 'alert'?)",
        "a.yaml:9:27: unknown key 'colour' (hint: check the spelling; docs/rules.md lists"
        " every key)",
    ]


def test_misspelt_event_type(tmp_path: Path) -> None:
    found = problems(tmp_path, a="aggregates:\n  orders: {count: purchse}\n")
    assert found == ["a.yaml:2:19: unknown event type 'purchse' (hint: did you mean 'purchase'?)"]


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    found = problems(tmp_path, a="aggregates:\n  orders: {count: purchase\n")
    assert len(found) == 1
    assert found[0].startswith("a.yaml:3:1: YAML syntax")


def test_event_is_only_for_per_event_rules(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "tags:\n  x: {when: \"event.type == 'view'\"}\n")
    assert len(found) == 1
    assert "only available in rules with `upon:`" in found[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE + 'tags:\n  a: {when: "nope > 1"}\n  b: {when: "orders >= \'x\'"}\n'
    found = problems(tmp_path, a=text, b="aggregates:\n  x: {count: view, window: 0d}\n")
    assert len(found) == 3


def test_a_tag_needs_a_condition(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "tags:\n  big: {display: 大}\n")
    assert len(found) == 1
    assert found[0].startswith("a.yaml:5:8: a tag needs exactly one of 'when'")


def test_transition_alert_must_exist(tmp_path: Path) -> None:
    lifecycle = """\
lifecycle:
  initial: prospect
  stages: {prospect: 潜在, new: 新客}
  transitions:
    - {from: prospect, to: new, upon: purchase, alert: welcom}
alerts:
  welcome: {severity: low}
"""
    found = problems(tmp_path, a=BASE, b=lifecycle)
    assert found == ["b.yaml:5:56: unknown alert 'welcom' (hint: did you mean 'welcome'?)"]


def test_a_missing_word_list_file(tmp_path: Path) -> None:
    found = problems(tmp_path, a=BASE + "lists:\n  bad: {file: missing.txt}\n")
    assert len(found) == 1
    assert found[0].startswith("a.yaml:5:15: cannot read word list")


DETAILS = """\
aggregates:
  orders: {count: purchase}
alerts:
  big:
    upon: purchase
    details:
      - orders
      - amount: "event.props.amount"
      - over: "event.props.amount - oders"
      - two: "orders"
        keys: "orders"
      - sku_count
  later:
    since: purchase
    after: 1d
    details:
      - amount: "event.props.amount"
"""


def test_alert_details_are_names_or_expressions_checked_where_written(tmp_path: Path) -> None:
    assert problems(tmp_path, a=DETAILS) == [
        "a.yaml:7:7: detail 4 names 2 values: a detail is a name or one name with its"
        ' expression (- group: "event.props.group_id")',
    ]
    fixed = DETAILS.replace('        keys: "orders"\n', "")
    assert problems(tmp_path, a=fixed) == [
        "a.yaml:9:37: unknown name 'oders' (hint: did you mean 'orders'?)",
        "a.yaml:11:9: unknown name 'sku_count' (hint: details name values, or give one an"
        ' expression: - next: "orders + 1")',
        "a.yaml:16:18: unknown name 'event' (hint: `event` is only available in rules with"
        " `upon:` (per-event rules))",
    ]
    good = fixed.replace(" - oders", "").replace("      - sku_count\n", "")
    good = good[: good.index("  later:")]
    (tmp_path / "a.yaml").write_text(good, encoding="utf-8")
    alert = load_rules(tmp_path).alerts["big"]
    assert [(name, shown.source) for name, shown in alert.details] == [
        ("orders", "orders"),
        ("amount", "event.props.amount"),
        ("over", "event.props.amount"),
        ("two", "orders"),
    ]
    assert alert.detail_reads == {"orders", "event"}

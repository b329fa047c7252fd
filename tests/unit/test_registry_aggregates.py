"""The aggregate kind registry is complete: every kind declares all it needs, in one place.

A new kind is a ``Kind`` in a module of ``taggers.aggregates`` (and in its ``KINDS``);
these tests say what else it needs: a result type, a place in the rule-file model and
its JSON Schema, a row in docs/rules.md, a merge (of two profiles' states) with a row in
docs/identity.md's merge table, working fold and read functions, and a rule file that
compiles and runs with it. Each check is a function of the registry, so a
test can show that it fails when a declaration is missing.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from streams.core_build import core_is_compiled
from taggers.aggregates import KINDS, Kind, Window, bucket_size
from taggers.aggregates.kind import not_a_monoid
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import BehaviourEvent
from taggers.expr import Type
from taggers.rulefile import AggregateSpec, RuleFile
from taggers.ruleset import load_rules
from tests.support import ROOT
from tests.support.core import START_MS, make_event

DOCS = ROOT / "docs" / "rules.md"
IDENTITY = ROOT / "docs" / "identity.md"


def merge_table() -> str:
    """The section of docs/identity.md that says how each kind merges."""
    text = IDENTITY.read_text(encoding="utf-8")
    return text.split("## How two profiles merge", 1)[1].split("\n## ", 1)[0]


def problems_of(
    kind: Kind, docs: str, schema: dict[str, Any], merges: str | None = None
) -> list[str]:
    """What a kind's declaration lacks, said in words (empty: complete)."""
    found = []
    if kind.merge is not_a_monoid or not callable(kind.merge):
        found.append("no merge of two states")
    if not re.search(rf"^\| [^|]*`{kind.name}`[^|]*\|", merges or merge_table(), re.M):
        found.append("no row in the merge table of docs/identity.md")
    if not isinstance(kind.result_type, Type):
        found.append("no result type")
    if kind.shape not in ("types", "field"):
        found.append(f"shape {kind.shape!r} is neither 'types' nor 'field'")
    if kind.default_limit < 1:
        found.append("no default limit")
    properties = schema["$defs"]["AggregateSpec"]["properties"]
    if kind.name not in properties:
        found.append("not a key of the rule-file JSON Schema")
    if not re.search(rf"^\| `{kind.name}`[ ,|]|^\| [^|]*`{kind.name}`[^|]*\|", docs, re.M):
        found.append("no row in the kinds table of docs/rules.md")
    if not kind.example.startswith("{" + kind.name + ":") or kind.example not in docs:
        found.append(f"its example {kind.example!r} is not in docs/rules.md")
    windows = re.search(r"`count`, `sum`.*?take windows", docs, re.S)
    said = windows is not None and f"`{kind.name}`" in windows.group(0)
    if said != kind.windowable:
        found.append("docs/rules.md says otherwise whether it takes a window")
    if kind.fold_event is None and kind.windowable is False and kind.time is None:
        found.append("not windowable, yet its value does not change with time")
    for option in kind.options:
        if option.name not in properties:
            found.append(f"its option {option.name!r} is not in the JSON Schema")
    return found


def test_every_kind_is_declared_completely() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    schema = RuleFile.model_json_schema()
    assert {name: problems_of(kind, docs, schema) for name, kind in KINDS.items()} == {
        name: [] for name in KINDS
    }
    assert all(name == kind.name for name, kind in KINDS.items())


def _events() -> list[BehaviourEvent]:
    return [
        make_event("purchase", day=0, order_id="o1", amount=12.5),
        make_event("view", day=1, sku="s1", category="c1"),
        make_event("survey", day=2, score=9),
        make_event("coupon_issued", day=3, coupon_id="k1", expires_at=START_MS + 5 * DAY_MS),
        make_event("purchase", day=4, order_id="o2", amount=20, category="c1"),
    ]


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_compiles_folds_and_reads(name: str, tmp_path: Path) -> None:
    """The kind's documented example compiles, is typed as declared, folds events and
    reads a value (and a windowed one when it takes a window)."""
    kind = KINDS[name]
    (tmp_path / "rules.yaml").write_text(f"aggregates:\n  it: {kind.example}\n")
    rules = load_rules(tmp_path)
    assert rules.aggregates["it"].kind is kind
    assert rules.types["it"] == kind.result_type or kind.typed_by_field
    engine = Engine(rules)
    profile = engine.new_profile("u1")
    for event in _events():
        engine.apply(profile, event)
    assert rules.aggregates["it"].key in profile.aggs  # it folded something
    value = engine.value_of("it", profile, profile.clock)
    assert value is not None
    # Its merge with another profile's state (here: of no events) reads the same.
    state = profile.aggs[rules.aggregates["it"].key]
    profile.aggs[rules.aggregates["it"].key] = kind.merge([state, None], kind.default_limit)
    assert engine.value_of("it", profile, profile.clock) == value
    if kind.windowable:
        window = Window(7 * DAY_MS, bucket_size(7 * DAY_MS))
        state, later = None, START_MS + DAY_MS
        for ts in (START_MS, later):  # two: an average gap needs two events
            state = window.add(kind, state, 1.0, ts, later, kind.default_limit)
        assert window.value(kind, state, later, kind.default_limit) is not None


def test_the_completeness_check_fails_when_a_declaration_is_forgotten() -> None:
    """Each check bites: a kind missing from the docs, the schema, with a wrong window
    claim or without a result type is reported."""
    docs = DOCS.read_text(encoding="utf-8")
    schema = RuleFile.model_json_schema()
    made_up = dataclasses.replace(KINDS["count"], name="median", example="{median: purchase}")
    assert problems_of(made_up, docs, schema) == [
        "no row in the merge table of docs/identity.md",
        "not a key of the rule-file JSON Schema",
        "no row in the kinds table of docs/rules.md",
        "its example '{median: purchase}' is not in docs/rules.md",
        "docs/rules.md says otherwise whether it takes a window",
    ]
    if not core_is_compiled():  # a compiled Kind refuses a field of the wrong type outright
        untyped = dataclasses.replace(KINDS["sum"], result_type=None)  # type: ignore[arg-type]
        assert problems_of(untyped, docs, schema) == ["no result type"]
    unmerged = dataclasses.replace(KINDS["pending"], merge=not_a_monoid)
    assert problems_of(unmerged, docs, schema) == ["no merge of two states"]
    without_merge_row = merge_table().replace("| `pending` |", "| pending |")
    assert problems_of(KINDS["pending"], docs, schema, without_merge_row) == [
        "no row in the merge table of docs/identity.md"
    ]
    unwindowed = dataclasses.replace(KINDS["sum"], windowable=False)
    assert "docs/rules.md says otherwise whether it takes a window" in problems_of(
        unwindowed, docs, schema
    )
    without_row = docs.replace("| `pending` |", "| pending |")
    assert "no row in the kinds table of docs/rules.md" in problems_of(
        KINDS["pending"], without_row, schema
    )


def test_the_rule_file_model_takes_exactly_the_registered_kinds() -> None:
    """AggregateSpec's kind keys are the registry's: one kind each, named in the error."""
    fields = set(AggregateSpec.model_fields)
    assert set(KINDS) <= fields
    assert fields - set(KINDS) == {
        *("of", "close", "due", "minus", "where", "by", "keys"),
        *("window", "limit", "description"),
    }
    with pytest.raises(ValueError, match=", ".join(KINDS)):
        AggregateSpec.model_validate({"count": "purchase", "sum": "props.amount"})

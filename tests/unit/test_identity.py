"""One person across ids in a replay: linking, merging, forgetting and consent
(docs/identity.md). The worker runs the same ``taggers.identity`` changes; the
integration tests prove it equal on the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taggers.engine import Engine
from taggers.identity import Identity
from taggers.outputs import Alert, Forgotten, IdentityMerge, Output, TagChange, Transition
from taggers.replay import BadLine, Replay
from taggers.ruleset import RuleSet, load_rules
from taggers.store import MemoryStore
from tests.support.core import make_event

RULES = """
aggregates:
  orders: {count: purchase}
  spend: {sum: props.amount, of: purchase}
  channels: {distinct: channel}
lifecycle:
  initial: prospect
  stages: {prospect: 潜在客户, new: 新客, loyal: 忠诚客户}
  transitions:
    - {from: prospect, to: new, when: "orders >= 1"}
    - {from: new, to: loyal, when: "orders >= 3"}
tags:
  buyer: {when: "orders >= 1"}
  big_spender: {when: "spend >= 500"}
alerts:
  koc: {severity: info, when: "orders >= 3"}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    return load_rules(folder)


def line(type_: str, user: str, day: float, **props: Any) -> bytes:
    return make_event(type_, user=user, day=day, **props).model_dump_json().encode()


def replay(
    rules: RuleSet, lines: list[bytes], store: MemoryStore | None = None
) -> tuple[list[Output | BadLine], MemoryStore, Replay]:
    store = store if store is not None else MemoryStore()
    run = Replay(Engine(rules), store)
    return list(run.run(lines)), store, run


def of(kind: type[object], results: list[Output | BadLine]) -> list[object]:
    return [r for r in results if isinstance(r, kind)]


def test_an_event_under_a_linked_id_applies_to_the_person(rules: RuleSet) -> None:
    results, store, _ = replay(
        rules,
        [
            line("purchase", "member:1", 0, amount=100),
            line("identify", "member:1", 1, ids=["wecom:x"]),
            line("purchase", "wecom:x", 2, amount=50),
        ],
    )
    person = store.get("member:1")
    assert person is not None and person.ids == ["wecom:x"]
    assert store.get("wecom:x") is None
    assert store.resolve(["wecom:x"]) == {"wecom:x": "member:1"}
    assert Engine(rules).value_of("orders", person, person.clock) == 2
    # The second purchase's outputs: the id it came under, and the person.
    last = [o for o in of(Transition, results) if o.to_stage == "new"]  # type: ignore[attr-defined]
    assert last and last[0].person_id == "member:1"  # type: ignore[attr-defined]
    under = [o for o in results if isinstance(o, TagChange | Transition | Alert)]
    assert all(o.person_id == "member:1" for o in under)


def test_two_histories_merge_into_the_survivor_as_one_person(rules: RuleSet) -> None:
    a = [line("purchase", "member:1", d, amount=200, channel="app") for d in (0, 2)]
    b = [line("purchase", "wecom:x", d, amount=150) for d in (1, 3)]
    _, store, _ = replay(rules, [*a, *b])
    held = set(store.get("member:1").tags)  # type: ignore[union-attr]
    merged, store, _ = replay(rules, [line("identify", "member:1", 4, ids=["wecom:x"])], store)
    one = [
        *[line("purchase", "member:1", d, amount=200, channel="app") for d in (0, 2)],
        *[line("purchase", "member:1", d, amount=150) for d in (1, 3)],
    ]
    _, alone, _ = replay(rules, one)
    engine = Engine(rules)
    person, reference = store.get("member:1"), alone.get("member:1")
    assert person is not None and reference is not None
    at = person.clock
    assert engine.aggregate_values(person, at) == engine.aggregate_values(reference, at)
    assert set(person.tags) == set(reference.tags) == {"buyer", "big_spender"}
    assert person.stage == reference.stage == "loyal"
    assert list(store.users()) == ["member:1"]  # no profile remains for the absorbed id
    assert store.tag_members("buyer") == ["member:1"]
    # What the identify sent: the survivor's net changes, one transition, one merge.
    merges = [o for o in merged if isinstance(o, IdentityMerge)]
    assert [(m.absorbed, m.person_id, m.ids) for m in merges] == [
        ("wecom:x", "member:1", ("member:1", "wecom:x"))
    ]
    gained = {o.tag for o in merged if isinstance(o, TagChange) and o.op == "add"}
    assert gained == set(person.tags) - held == {"big_spender"}
    moves = [o for o in merged if isinstance(o, Transition)]
    assert [(m.from_stage, m.to_stage) for m in moves] == [("new", "loyal")]
    assert not [o for o in merged if isinstance(o, TagChange) and o.op == "remove"]


def test_an_edge_alert_on_in_either_profile_does_not_fire_again(rules: RuleSet) -> None:
    lines = [line("purchase", "wecom:x", d, amount=10) for d in (0, 1, 2)]
    lines += [line("purchase", "member:1", 3, amount=10)]
    lines += [line("identify", "member:1", 4, ids=["wecom:x"])]
    results, _, _ = replay(rules, lines)
    kocs = [r for r in results if isinstance(r, Alert) and r.name == "koc"]
    assert len(kocs) == 1  # wecom:x's, not again for the merged person


def test_a_new_id_identifying_an_old_one_keeps_the_old_ones_profile(rules: RuleSet) -> None:
    _, store, _ = replay(
        rules,
        [line("purchase", "wecom:x", 0, amount=10), line("identify", "card:9", 1, ids=["wecom:x"])],
    )
    assert store.resolve(["card:9"]) == {"card:9": "wecom:x"}
    person = store.get("wecom:x")
    assert person is not None and person.ids == ["card:9"]


def test_a_person_with_too_many_ids_refuses_the_link(rules: RuleSet) -> None:
    lines = [line("purchase", "p", 0, amount=1)]
    lines += [line("identify", "p", 1, ids=[f"id:{n}" for n in range(3)])]
    store = MemoryStore()
    run = Replay(Engine(rules), store, max_ids=3)
    results = list(run.run(lines))
    bad = of(BadLine, results)
    assert [b.reason for b in bad] == ["too_many_ids"]  # type: ignore[attr-defined]
    assert store.resolve(["id:0", "id:1", "id:2"]) == {}


def test_a_crash_after_linking_finishes_the_merge_once_on_the_redo(rules: RuleSet) -> None:
    lines = [line("purchase", "member:1", 0, amount=100), line("purchase", "wecom:x", 1, amount=50)]
    _, store, _ = replay(rules, lines, MemoryStore(copies=True))  # a crash loses what is unsaved
    event = make_event("identify", user="member:1", day=2, ids=["wecom:x"])
    engine = Engine(rules)
    crashed = Identity(engine, store).change(event, "c")  # step 1 done, then a crash
    assert store.get("wecom:x") is None and store.resolve(["wecom:x"]) == {"wecom:x": "member:1"}
    redo = Identity(engine, store).change(event, "c")
    assert redo.recovered
    assert [o.id for o in redo.outputs] == [o.id for o in crashed.outputs]
    redo.apply(store)
    again = Identity(engine, store).change(event, "c")
    assert not again.outputs and not again.recovered
    again.apply(store)
    person = store.get("member:1")
    assert person is not None and engine.value_of("orders", person, person.clock) == 2


def test_forget_deletes_the_person_and_their_late_events_change_nothing(rules: RuleSet) -> None:
    lines = [
        line("purchase", "member:1", 0, amount=100),
        line("identify", "member:1", 1, ids=["wecom:x"]),
        line("purchase", "wecom:x", 2, amount=100),
        line("forget", "wecom:x", 3),
        line("purchase", "wecom:x", 2.5, amount=100),  # late: before the forget
    ]
    results, store, run = replay(rules, lines)
    gone = of(Forgotten, results)
    assert [(g.person_id, g.ids) for g in gone] == [  # type: ignore[attr-defined]
        ("member:1", ("member:1", "wecom:x"))
    ]
    assert list(store.users()) == [] and store.tag_members("buyer") == []
    assert store.resolve(["wecom:x"]) == {}
    assert set(store.tombstones(["member:1", "wecom:x"])) == {"member:1", "wecom:x"}
    assert run.forgotten == 1
    # Replaying the whole stream again: nobody comes back, nothing goes out.
    again, store, _ = replay(rules, lines, store)
    assert list(store.users()) == []
    assert [r for r in again if not isinstance(r, BadLine)] == []


def test_an_event_after_the_forget_starts_a_new_profile(rules: RuleSet) -> None:
    lines = [
        line("purchase", "u", 0, amount=100),
        line("forget", "u", 1),
        line("purchase", "u", 2, amount=7),
        line("purchase", "u", 0.5, amount=100),  # late, from before the forget
    ]
    _, store, run = replay(rules, lines)
    person = store.get("u")
    assert person is not None and person.events == 1 and person.reborn is not None
    assert run.forgotten == 1


def test_an_opted_out_person_gets_no_alerts_and_no_burst_on_opt_in(rules: RuleSet) -> None:
    lines = [line("marketing_opt_out", "u", 0)]
    lines += [line("purchase", "u", d, amount=10) for d in (1, 2, 3)]
    lines += [line("marketing_opt_in", "u", 4), line("purchase", "u", 5, amount=10)]
    results, _, run = replay(rules, lines)
    assert of(Alert, results) == []
    assert run.engine.suppressed["koc"] == 1
    changes = of(TagChange, results)
    assert changes and all(c.opted_out for c in changes)  # type: ignore[attr-defined]


def test_consent_is_the_latest_by_event_time(rules: RuleSet) -> None:
    lines = [line("marketing_opt_in", "u", 2), line("marketing_opt_out", "u", 1)]
    _, store, _ = replay(rules, lines)
    person = store.get("u")
    assert person is not None and person.consent is not None and person.consent[1] == "in"


def test_profiles_merge_in_replay_json_under_the_survivor(rules: RuleSet, tmp_path: Path) -> None:
    lines = [line("purchase", "a", 0, amount=1), line("purchase", "b", 1, amount=2)]
    lines += [line("identify", "a", 2, ids=["b"])]
    _, store, _ = replay(rules, lines)
    profiles = {u: store.get(u) for u in store.users()}
    assert list(profiles) == ["a"]
    assert json.dumps(profiles["a"].to_dict() if profiles["a"] else None)

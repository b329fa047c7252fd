"""A rule change before and after it goes live: recompute, diff, and new aggregates."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis

from streams.cli import main
from streams.local_stack import RedisServer
from streams.rules_board import Rejection, RulesBoard, WorkerRules
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.outputs import Alert, TagChange, Transition
from taggers.profile import Profile
from taggers.replay import Replay
from taggers.rulediff import new_aggregates
from taggers.ruleset import RuleSet, load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from tests.support.core import edited_rules, make_event

RULES = load_rules(BUNDLED_RULES)
STREAM = [line.encode() for line in simulate(SimulationConfig(users=300, days=150, seed=5))]
THRESHOLD = ("params.yaml", ("high_value_spend: 1000", "high_value_spend: {}"))


def replayed() -> dict[str, Profile]:
    replay = Replay(Engine(RULES), MemoryStore())
    for _ in replay.run(STREAM):
        pass
    store = replay.store
    return {user: copy.deepcopy(p) for user, p in store.load(list(store.users())).items()}


PROFILES = replayed()


def threshold(tmp_path: Path, spend: int) -> RuleSet:
    name, (old, new) = THRESHOLD
    return load_rules(edited_rules(tmp_path / "rules", {name: (old, new.format(spend))}))


def spend_90d(profile: Profile) -> float:
    value = Engine(RULES).value_of("spend_90d", profile, profile.clock)
    return float(value or 0)


def test_recompute_under_the_same_rules_changes_nothing() -> None:
    engine = Engine(RULES)
    for profile in copy.deepcopy(PROFILES).values():
        before = orjson.dumps(profile.to_dict())
        assert engine.recompute(profile) == []
        assert orjson.dumps(profile.to_dict()) == before


@pytest.mark.parametrize("spend", [500, 2000])
def test_a_threshold_change_reaches_users_without_new_events(tmp_path: Path, spend: int) -> None:
    rules = threshold(tmp_path, spend)
    engine = Engine(rules)
    profiles = copy.deepcopy(PROFILES)
    changes: dict[str, str] = {}
    for user, profile in sorted(profiles.items()):
        for output in engine.recompute(profile):
            if isinstance(output, TagChange) and output.tag == "high_value":
                assert output.reason.version == rules.version
                assert output.reason.rule == "high_value"
                assert output.at == profile.clock
                changes[user] = output.op
    expected = {
        user: ("add" if spend_90d(p) >= spend else "remove")
        for user, p in PROFILES.items()
        if ("high_value" in p.tags) != (spend_90d(p) >= spend)
    }
    assert len(expected) > 5  # the change matters to someone
    assert changes == expected
    for user, profile in profiles.items():
        assert ("high_value" in profile.tags) == (spend_90d(PROFILES[user]) >= spend)
    # Done again (a resumed recompute): nothing more happens.
    assert all(engine.recompute(p) == [] for p in profiles.values())


def test_recompute_output_ids_repeat_for_the_same_rules(tmp_path: Path) -> None:
    engine = Engine(threshold(tmp_path, 500))
    first = [o.id for p in copy.deepcopy(PROFILES).values() for o in engine.recompute(p)]
    second = [o.id for p in copy.deepcopy(PROFILES).values() for o in engine.recompute(p)]
    assert first and first == second


def test_a_removed_tag_is_taken_off_and_a_removed_stage_starts_over(tmp_path: Path) -> None:
    directory = edited_rules(tmp_path / "rules")
    tags = directory / "tags.yaml"
    text = tags.read_text(encoding="utf-8")
    start = text.index("  high_value:")
    end = text.index("  frequent_buyer:")
    tags.write_text(text[:start] + text[end:], encoding="utf-8")
    engine = Engine(load_rules(directory))
    holder = next(p for p in copy.deepcopy(PROFILES).values() if "high_value" in p.tags)
    outputs = engine.recompute(holder)
    removed = [o for o in outputs if isinstance(o, TagChange) and o.tag == "high_value"]
    assert [(o.op, o.reason.note) for o in removed] == [("remove", "rule removed")]
    assert "high_value" not in holder.tags

    lost = copy.deepcopy(holder)
    lost.stage = "vip"  # a stage the rules no longer have
    moved = [o for o in engine.recompute(lost) if isinstance(o, Transition)]
    assert moved and moved[0].from_stage == "vip"
    assert lost.stage in {"prospect", "new", "active", "loyal", "dormant", "churned"}


def test_a_changed_aggregate_definition_starts_empty(tmp_path: Path) -> None:
    rules = load_rules(
        edited_rules(
            tmp_path / "rules",
            {"aggregates.yaml": ("window: 90d}", "window: 30d}")},
        )
    )
    old, new = Engine(RULES), Engine(rules)
    profile = old.new_profile("u1")
    old.apply(profile, make_event("purchase", amount=300))
    assert old.value_of("spend_90d", profile, profile.clock) == 300
    # The new definition does not read the old one's state as its own...
    assert new.value_of("spend_90d", profile, profile.clock) == 0
    new.apply(profile, make_event("purchase", day=1, amount=50))
    assert new.value_of("spend_90d", profile, profile.clock) == 50
    # ...and a recompute drops the old state from the profile.
    new.recompute(profile)
    assert not any(
        key.startswith("spend_90d@") and key != rules.aggregates["spend_90d"].key
        for key in profile.aggs
    )
    notices = [str(n) for n in new_aggregates(RULES, rules)]
    assert any("'spend_90d' has a new definition" in n and "tag high_value" in n for n in notices)
    assert all("aggregates.yaml:" in n for n in notices)
    assert new_aggregates(RULES, RULES) == []


def test_rules_diff_counts_the_users_who_gain_a_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in STREAM))
    new_dir = tmp_path / "rules"
    threshold(tmp_path, 500)
    assert (
        main(["rules", "diff", "--events", str(events), str(BUNDLED_RULES), str(new_dir), "--json"])
        == 0
    )
    result = orjson.loads(capsys.readouterr().out)
    gainers = sorted(u for u, p in PROFILES.items() if 500 <= spend_90d(p) < 1000)
    assert result["tags"] == {
        "high_value": {
            "gain": len(gainers),
            "lose": 0,
            "gain_sample": gainers[:5],
            "lose_sample": [],
            "backfill": 0,  # spend_90d is kept: the live recompute reaches every one
            "backfill_sample": [],
            "backfill_needs": [],
        }
    }
    # friend_lost reads the same threshold (a high spender who deletes the brand's WeCom
    # account): it may gain, never lose; nothing else moves.
    assert result["stages"] == {} and set(result["alerts"]) <= {"friend_lost"}
    assert all(alert["lose"] == 0 for alert in result["alerts"].values())
    assert result["users"] == len(PROFILES)

    assert main(["rules", "diff", "--events", str(events), str(BUNDLED_RULES), str(new_dir)]) == 0
    text = capsys.readouterr().out
    assert f"tag high_value (高价值客户): +{len(gainers)} -0" in text


def test_rules_diff_refuses_a_bad_rule_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = edited_rules(tmp_path / "rules", {"tags.yaml": ("spend_90d >=", "spend_09d >=")})
    events = tmp_path / "events.jsonl"
    events.write_bytes(STREAM[0] + b"\n")
    assert main(["rules", "diff", "--events", str(events), str(BUNDLED_RULES), str(bad)]) == 1
    assert "tags.yaml:4:" in capsys.readouterr().err


def test_rules_status_shows_each_worker_the_last_rejection_and_the_recompute(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    board = RulesBoard(redis_client)
    rejection = Rejection("2026-11-28T04:00:00+00:00", "bad000000000", ["tags.yaml:4:11: oops"])
    board.report(WorkerRules("a:1", RULES.version, "rules", "t0", "t1", rejection))
    seen = datetime.now(UTC).isoformat(timespec="seconds")
    board.report(WorkerRules("b:2", "other0000000", "rules", "t0", seen))
    assert board.start_recompute(RULES.version, "other0000000", "2026-11-28T04:00:00+00:00")
    assert not board.start_recompute(RULES.version, None, "t3")  # already the current one
    progress = board.recompute()
    assert progress is not None
    progress.scanned, progress.cursor = 4000, "17"
    progress.updated_at = "2026-11-28T04:00:05+00:00"
    assert board.save_progress(progress)
    board.save_total("other0000000", 5)  # an earlier recompute's estimate: not this one's
    assert board.total(RULES.version) is None
    board.save_total(RULES.version, 10_000)
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)

    assert main(["rules", "status", "--rules", str(BUNDLED_RULES)]) == 0
    out = capsys.readouterr().out
    assert f"rule directory {BUNDLED_RULES}: version {RULES.version}" in out
    assert f"worker a:1: version {RULES.version}" in out
    assert "last rejected: version bad000000000" in out and "tags.yaml:4:11: oops" in out
    assert "warning: the workers run 2 different versions" in out
    assert re.search(r"worker b:2: version other0000000 .*\(last seen \d+ s ago,", out)
    assert f"recompute for version {RULES.version} (from other0000000): running" in out
    # 4,000 users in 5 s: 800 a second, 6,000 to go.
    assert "  recompute: 40% (4,000 users of 10,000 users), 800 users/s, 8 s left\n" in out

    assert main(["rules", "status", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert [w["version"] for w in report["workers"]] == [RULES.version, "other0000000"]
    assert report["recompute"]["version"] == RULES.version
    assert report["recompute_total"] == 10_000


def test_recompute_progress_and_lease(redis_client: redis.Redis) -> None:
    board = RulesBoard(redis_client)
    board.start_recompute("v1", None, "t0")
    progress = board.recompute()
    assert progress is not None and progress.running
    progress.scanned, progress.cursor = 10, "42"
    assert board.save_progress(progress)
    saved = board.recompute()
    assert saved is not None and (saved.scanned, saved.cursor) == (10, "42")
    # A newer rule change starts over; the old recompute's progress is not written.
    board.start_recompute("v2", "v1", "t1")
    assert not board.save_progress(progress)
    current = board.recompute()
    assert current is not None and (current.version, current.scanned) == ("v2", 0)
    # One worker at a time; the holder keeps it.
    assert board.lease("a", 10_000)
    assert not board.lease("b", 10_000)
    assert board.lease("a", 10_000)


WELCOME = """
  welcome_check:
    severity: low
    display: 入会两周回访
    since: {since}
    after: 14d
"""


def welcome_rules(tmp_path: Path, since: str) -> Path:
    directory = edited_rules(tmp_path / "rules")
    with (directory / "alerts.yaml").open("a", encoding="utf-8") as alerts:
        alerts.write(WELCOME.format(since=since))
    return directory


def live_alerts(rules: RuleSet, users: list[str]) -> set[str]:
    """The users the live deployment raises welcome_check for: their profiles kept under
    the live rules, recomputed under the new ones at the swap, then 30 days pass."""
    engine = Engine(rules)
    reached = set()
    for user in users:
        profile = copy.deepcopy(PROFILES[user])
        outputs = engine.recompute(profile)
        outputs += engine.advance(profile, profile.clock + 30 * 86_400_000)
        if any(isinstance(o, Alert) and o.name == "welcome_check" for o in outputs):
            reached.add(user)
    return reached


@pytest.mark.parametrize(
    ("since", "kept"), [("[member_join, check_in]", False), ("member_join", True)]
)
def test_a_new_timer_says_whom_the_live_deployment_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str, kept: bool
) -> None:
    """A timer counting from a last time the live rules never kept cannot fire for existing
    users: `rules check --against` names it, and `rules diff` marks exactly the users the
    live deployment (recompute at the swap, no backfill) does not reach."""
    new_dir = welcome_rules(tmp_path, since)
    assert main(["rules", "check", str(new_dir), "--against", str(BUNDLED_RULES)]) == 0
    checked = capsys.readouterr().out
    named = "the time of the last check_in or member_join, which the live rules never kept"
    assert (named in checked) is not kept
    if not kept:
        assert re.search(r"alerts\.yaml:\d+:\d+: the timer of alert welcome_check", checked)
        assert "fires for them only after their next check_in or member_join" in checked
        assert "rebuild the profiles" in checked

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in STREAM))
    command = ["rules", "diff", "--events", str(events), str(BUNDLED_RULES), str(new_dir)]
    assert main([*command, "--json"]) == 0
    change = orjson.loads(capsys.readouterr().out)["alerts"]["welcome_check"]
    new_rules = load_rules(new_dir)
    replayed_alerts = Replay(Engine(new_rules), MemoryStore()).run(STREAM)
    gainers = sorted(
        {o.user_id for o in replayed_alerts if isinstance(o, Alert) and o.name == "welcome_check"}
    )
    assert change["gain"] == len(gainers) > 0
    reached = live_alerts(new_rules, gainers)
    if kept:
        assert change["backfill"] == 0 and reached == set(gainers)
    else:
        assert change["backfill"] == len(gainers) and reached == set()
        assert change["backfill_sample"] == gainers[:5]
        assert change["backfill_needs"] == ["the time of the last check_in or member_join"]
    assert main(command) == 0
    text = capsys.readouterr().out
    assert ("only after a backfill" in text) is not kept

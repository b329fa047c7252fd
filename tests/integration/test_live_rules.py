"""Rules change while the worker runs: hot reload under load, and the recompute after.

A real broker (tansu), a real Redis and `tagger run` in a process of its own; the rule
directory is edited in place, as a rule author (or a ConfigMap update) would.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker
from streams.redis_store import RedisStore
from streams.rules_board import Recompute, RulesBoard
from streams.settings import Settings
from streams.topics import ensure_topics
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.profile import Profile
from taggers.ruleset import load_rules, rules_version
from taggers.simulate import SimulationConfig, simulate
from tests.support.core import edited_rules
from tests.support.hostile_rules import HOSTILE
from tests.support.stack import (
    all_applied,
    assigned_partitions,
    get_metrics,
    pipeline_settings,
    produce,
    read_topics,
    running_worker,
    stop_worker,
    wait_for,
)

pytestmark = pytest.mark.integration
ENGINE = Engine(load_rules(BUNDLED_RULES))  # spend_90d is the same in every version here
TYPO = ('when: "spend_90d >= high_value_spend"', 'when: "spend_09d >= high_value_spend"')


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def set_threshold(directory: Path, spend: int) -> str:
    """Edit the rule directory's high-value threshold in place; the new version."""
    params = directory / "params.yaml"
    text = params.read_text(encoding="utf-8")
    start = text.index("high_value_spend: ") + len("high_value_spend: ")
    end = text.index(" ", start)
    params.write_text(text[:start] + str(spend) + text[end:], encoding="utf-8")
    return load_rules(directory).version


def spend_90d(profile: Profile) -> float:
    return float(ENGINE.value_of("spend_90d", profile, profile.clock) or 0)


def metric(settings: Settings, name: str, **labels: str) -> float:
    """The sum of a metric's samples that have these labels (and any others)."""
    found = get_metrics(f"http://127.0.0.1:{settings.web_port}/metrics")
    wanted = labels.items()
    return sum(v for (n, have), v in found.items() if n == name and wanted <= set(have))


def test_rules_reload_under_load_and_outputs_carry_the_deciding_version(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    directory = edited_rules(tmp_path / "rules")
    old = load_rules(directory).version
    settings = pipeline_settings(
        broker, redis_server, rules_dir=directory, rules_poll_interval=0.3, recompute_rate=0
    )
    ensure_topics(settings)
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=300, days=160, seed=11))]
    half = len(lines) // 2
    swapped = threading.Event()

    def producer() -> None:
        for start in range(0, half, 200):  # the first half flows while the rules change
            produce(settings, lines[start : min(start + 200, half)])
        swapped.wait(60)
        produce(settings, lines[half:])  # the second half meets the new rules

    sender = threading.Thread(target=producer)
    # Two workers in one group, each watching the rule directory (as two pods would a
    # ConfigMap): both must end on the same version.
    other = settings.model_copy(update={"web_port": free_port()})
    (tmp_path / "second").mkdir()
    workers = (settings, other)
    with running_worker(settings, tmp_path), running_worker(other, tmp_path / "second"):
        # The group settled before the first event: else, on a slow machine, one worker
        # could apply the whole first half before the other joins.
        wait_for(lambda: all(assigned_partitions(w) for w in workers), 120, "both workers to join")
        sender.start()
        wait_for(
            lambda: all(metric(w, "tagger_events_total", outcome="applied") > 0 for w in workers),
            120,
            "events flowing through both workers",
        )
        tags = directory / "tags.yaml"
        good_tags = tags.read_text(encoding="utf-8")
        tags.write_text(good_tags.replace(*TYPO), encoding="utf-8")
        wait_for(
            lambda: all(
                metric(w, "tagger_rule_reloads_total", result="rejected") == 1 for w in workers
            ),
            30,
            "the invalid rule set rejected",
        )
        for each in workers:
            assert metric(each, "tagger_rules_info", version=old) == 1
        board = RulesBoard(redis_client, settings.redis_prefix)
        assert [w.version for w in board.workers()] == [old, old]
        for reported in board.workers():
            assert reported.rejected is not None
            problems = reported.rejected.problems
            assert any("tags.yaml:4:" in p and "spend_09d" in p for p in problems)

        tags.write_text(good_tags, encoding="utf-8")
        new = set_threshold(directory, 500)
        wait_for(
            lambda: all(metric(w, "tagger_rules_info", version=new) == 1 for w in workers),
            30,
            "the new rules on both workers",
        )
        swapped.set()
        for each in workers:
            assert metric(each, "tagger_rules_info", version=old) == 0
            assert metric(each, "tagger_rule_reloads_total", result="loaded") == 1
        assert [w.version for w in board.workers()] == [new, new]
        sender.join(120)
        wait_for(lambda: all_applied(redis_client, settings, lines), 120, "every event applied")

    # No event lost: every event is in some profile's count, once.
    store = RedisStore(redis_client, prefix=settings.redis_prefix)
    profiles = store.load(list(store.users()))
    assert sum(p.events for p in profiles.values()) == len(set(lines))

    # Every output carries the version that decided it: the old one, then the new one,
    # never the rejected one, and never the old one again once a user's outputs moved on.
    outputs = read_topics(settings, want=None, timeout=60)
    changes = outputs[settings.tag_changes_topic]
    versions = {
        o["reason"]["version"] for topic in outputs.values() for o in topic if "reason" in o
    }
    assert versions == {old, new}
    by_user: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        by_user[change["user_id"]].append(change["reason"]["version"])
    for user, seen in by_user.items():
        switched = seen.index(new) if new in seen else len(seen)
        assert set(seen[switched:]) <= {new}, user
    adds = [c for c in changes if c["tag"] == "high_value" and c["op"] == "add"]
    under_old = [c["reason"]["values"]["spend_90d"] for c in adds if c["reason"]["version"] == old]
    under_new = [c["reason"]["values"]["spend_90d"] for c in adds if c["reason"]["version"] == new]
    assert under_old and min(under_old) >= 1000
    assert under_new and min(under_new) >= 500
    assert any(spend < 1000 for spend in under_new)  # decided by the new threshold


def audience(store: RedisStore) -> set[str]:
    return set(store.tag_members("high_value"))


def recompute_of(board: RulesBoard, version: str) -> Recompute | None:
    found = board.recompute()
    return found if found is not None and found.version == version else None


def test_after_a_threshold_change_users_without_new_events_gain_and_lose_the_tag(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    directory = edited_rules(tmp_path / "rules")
    settings = pipeline_settings(
        broker, redis_server, rules_dir=directory, rules_poll_interval=0.3, recompute_rate=60
    )
    ensure_topics(settings)
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=400, days=160, seed=12))]
    produce(settings, lines)
    store = RedisStore(redis_client, prefix=settings.redis_prefix)
    board = RulesBoard(redis_client, settings.redis_prefix)
    worker = start_worker(settings, tmp_path)
    try:
        wait_for(lambda: all_applied(redis_client, settings, lines), 120, "every event applied")
        first = load_rules(directory).version
        wait_for(
            lambda: (r := recompute_of(board, first)) is not None and not r.running,
            60,
            "the recompute the first start began",
        )
        started = recompute_of(board, first)
        assert started is not None and started.changed == 0  # the same rules: no change
        profiles = store.load(list(store.users()))
        spend = {user: spend_90d(p) for user, p in profiles.items()}
        assert audience(store) == {u for u, s in spend.items() if s >= 1000}

        # Lower the bar: users with no new event gain the tag.
        lower = set_threshold(directory, 500)
        wait_for(
            lambda: (r := recompute_of(board, lower)) is not None and not r.running,
            90,
            "the recompute after lowering the threshold",
        )
        gainers = {u for u, s in spend.items() if 500 <= s < 1000}
        assert len(gainers) > 5
        assert audience(store) == {u for u, s in spend.items() if s >= 500}
        done = recompute_of(board, lower)
        assert done is not None and done.scanned >= len(profiles)

        # Raise it, and kill the worker in the middle: a new one goes on from the cursor.
        higher = set_threshold(directory, 2000)
        wait_for(
            lambda: (r := recompute_of(board, higher)) is not None and r.scanned > 0,
            60,
            "the recompute after raising the threshold",
        )
        worker.kill()  # SIGKILL
        worker.wait()
        at_kill = recompute_of(board, higher)
        assert at_kill is not None and at_kill.running and at_kill.cursor != "0"
        worker = start_worker(settings, tmp_path)
        wait_for(
            lambda: (r := recompute_of(board, higher)) is not None and not r.running,
            120,
            "the resumed recompute",
        )
        assert audience(store) == {u for u, s in spend.items() if s >= 2000}
        finished = recompute_of(board, higher)
        assert finished is not None
        assert finished.scanned < len(profiles) + at_kill.scanned  # it did not start over
    finally:
        stop_worker(worker)

    outputs = read_topics(settings, want=None, timeout=60)
    recomputed = [
        c
        for c in outputs[settings.tag_changes_topic]
        if c["tag"] == "high_value" and c["reason"]["version"] in (lower, higher)
    ]
    added = {
        c["user_id"] for c in recomputed if c["op"] == "add" and c["reason"]["version"] == lower
    }
    removed = {c["user_id"] for c in recomputed if c["op"] == "remove"}
    assert added == gainers
    assert removed == {u for u, s in spend.items() if 500 <= s < 2000}
    # Without any new event, the stored profiles agree with what the new rules say.
    final = store.load(list(store.users()))
    assert {u for u, p in final.items() if "high_value" in p.tags} == audience(store)


def test_a_hostile_rule_directory_is_rejected_and_the_old_rules_stay_live(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Each hostile directory once stopped every worker watching it (or blocked its event
    loop past the session timeout). Swapped in as a ConfigMap update does (a symlink
    replaced at once), each is rejected with file:line:column, counted and kept in the
    status, while the old rules stay live and the worker keeps serving."""
    live = tmp_path / "live"
    good = edited_rules(tmp_path / "good")
    live.symlink_to(good)
    old = load_rules(live).version
    settings = pipeline_settings(
        broker, redis_server, rules_dir=live, rules_poll_interval=0.3, recompute_rate=0
    )
    ensure_topics(settings)
    board = RulesBoard(redis_client, settings.redis_prefix)

    def swap_in(directory: Path) -> None:
        link = tmp_path / "next"
        link.symlink_to(directory)
        link.replace(live)

    with running_worker(settings, tmp_path):
        wait_for(lambda: len(board.workers()) == 1, 120, "the worker to report its rules")
        for count, hostile in enumerate(HOSTILE, start=1):
            directory = hostile.make(tmp_path / hostile.name)
            swap_in(directory)
            version = rules_version(live)

            def rejected(version: str = version) -> bool:
                found = board.workers()
                return bool(found) and getattr(found[0].rejected, "version", None) == version

            wait_for(rejected, 30, f"{hostile.name} rejected")
            (reported,) = board.workers()
            assert reported.version == old, hostile.name
            assert reported.rejected is not None
            first = reported.rejected.problems[0]
            assert first.startswith(f"{live}/{hostile.where}"), first
            assert hostile.message in first, first
            assert metric(settings, "tagger_rule_reloads_total", result="rejected") == count
            assert metric(settings, "tagger_rules_info", version=old) == 1

        # Still alive and still watching: a good change is loaded, events are applied.
        swap_in(good)
        new = set_threshold(good, 500)
        wait_for(
            lambda: metric(settings, "tagger_rules_info", version=new) == 1, 30, "the new rules"
        )
        assert metric(settings, "tagger_rule_reloads_total", result="loaded") == 1
        # A word list is part of the version: a new word is a reload (lists read from
        # outside the directory were never reloaded).
        words = good / "lists" / "sensitive_words.txt"
        words.write_text(words.read_text(encoding="utf-8") + "新敏感词\n", encoding="utf-8")
        listed = rules_version(good)
        wait_for(
            lambda: metric(settings, "tagger_rules_info", version=listed) == 1, 30, "the new list"
        )
        lines: list[str | bytes] = [*simulate(SimulationConfig(users=20, days=30, seed=13))]
        produce(settings, lines)
        wait_for(lambda: all_applied(redis_client, settings, lines), 120, "every event applied")

"""What only the Redis store has, against a real redis-server: its key layout, its function
library (reloaded after a restart, the previous release's call kept for a rolling upgrade)
and ``tagger profile`` and the profile view reading it. The contract it shares with the
memory store, on Redis and on a Redis Cluster, is tests/unit/test_store_contract.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import redis

from streams.cli import main
from streams.local_stack import RedisServer
from streams.redis_store import RedisStore
from streams.web import DataAccess
from streams.worker.views import DataViews
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.pipeline import Pipeline
from taggers.profile import Profile
from taggers.profile_record import PROFILE_RECORD_SCHEMA, profile_record
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.store import SAVED, tombstone_hash
from tests.support.core import make_event, tag_record
from tests.support.values import EVENTS as VALUE_EVENTS
from tests.support.values import RULES as VALUE_RULES

pytestmark = pytest.mark.integration
RULES = load_rules(BUNDLED_RULES)


def test_the_keys_are_as_the_module_docstring_lays_them_out(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, prefix="shop")
    profile = Profile("u1", stage="new", tags={"vip": tag_record(rule="vip")}, due=90)
    store.save([profile], partition=4, offsets={"u1": {"k3": 12}})
    assert sorted(redis_client.keys()) == [
        b"shop:due:{p4}",
        b"shop:stage:{new}",
        b"shop:tag:{vip}",
        b"shop:tags",
        b"shop:u:{u1}",
    ]
    fields = redis_client.hgetall("shop:u:{u1}")
    assert fields.keys() == {b"p", b"v", b"d", b"o:k3", b"w"}
    assert (fields[b"v"], fields[b"d"], fields[b"o:k3"]) == (b"1", b"4", b"12")
    assert fields[b"w"] == store.mark.encode()
    assert orjson.loads(fields[b"p"]) == orjson.loads(orjson.dumps(profile.to_dict()))
    assert redis_client.zrange("shop:due:{p4}", 0, -1, withscores=True) == [(b"u1", 90.0)]
    assert redis_client.zrange("shop:tag:{vip}", 0, -1, withscores=True) == [(b"u1", 0.0)]
    assert redis_client.smembers("shop:tags") == {b"vip"}


def test_a_link_is_one_key_in_the_ids_slot_and_a_forget_leaves_no_id(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client, prefix="shop", tombstone_days=30)
    tags = {"vip": tag_record(rule="vip")}
    store.save([Profile("用户q", stage="new", tags=tags, due=90)], partition=2)
    store.save([Profile("p1", stage="new", tags=tags, due=90)], partition=4)
    store.save([], links={"用户q": "p1"}, absorbed=list(store.load(["用户q"]).values()))
    assert redis_client.get("shop:link:{用户q}") == b"p1"
    assert not redis_client.exists("shop:u:{用户q}")
    assert redis_client.zrange("shop:due:{p2}", 0, -1) == []
    assert redis_client.zrange("shop:stage:{new}", 0, -1) == [b"p1"]

    store.forget(["p1", "用户q"], 1_700_000_000_000, partition=4)
    hashed = [tombstone_hash(user) for user in ("p1", "用户q")]
    kept = sorted(redis_client.keys())
    assert kept == sorted(
        [b"shop:tags", *(f"shop:tomb:{{{h}}}".encode() for h in hashed)]
    )  # (audiences, stages and deadline sets that emptied are gone with their last id)
    for key in kept[1:]:
        assert redis_client.get(key) == b"1700000000000"
        assert 30 * 86_400_000 - 60_000 < redis_client.pttl(key) <= 30 * 86_400_000
    values = [redis_client.get(key) for key in kept[1:]]
    everything = " ".join(v.decode() if isinstance(v, bytes) else str(v) for v in kept + values)
    assert "用户q" not in everything and "p1" not in everything
    assert redis_client.smembers("shop:tags") == {b"vip"}  # a tag name, not a person


def test_a_profile_stored_before_the_identity_fields_loads(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    stored = Profile("u1", events=3).to_dict()
    for name in ("ids", "consent", "reborn"):
        del stored[name]
    redis_client.hset(store.keys.user("u1"), mapping={"p": orjson.dumps(stored), "v": 4})
    loaded = store.load(["u1"])["u1"]
    assert (loaded.ids, loaded.consent, loaded.reborn, loaded.events) == ([], None, None, 3)
    loaded.ids.append("u2")
    assert store.save([loaded]) == {"u1": SAVED}
    assert RedisStore(redis_client).load(["u1"])["u1"].ids == ["u2"]


def test_functions_lost_by_a_restart_are_loaded_again(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    redis_client.function_flush()
    profile = Engine(RULES).new_profile("u1")
    assert store.save([profile]) == {"u1": SAVED}
    redis_client.function_flush()
    store.forget(["u1"], 5)
    assert store.tombstones(["u1"]) == {"u1": 5}
    redis_client.function_flush()
    assert store.save([], links={"u2": "u3"}) == {"u2": "linked"}


def test_tagger_profile_prints_a_stored_profile(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", amount=1200, channel="wecom"))
    RedisStore(redis_client).save([profile])
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)

    assert main(["profile", "u1"]) == 0
    out = capsys.readouterr().out
    assert "user u1: stage new (新客) since 2026-01-01T08:00:00.000+08:00" in out
    assert "high_value (高价值客户) since 2026-01-01T08:00:00.000+08:00  because" in out
    assert "spend_90d=1200" in out

    assert main(["profile", "u1", "--json"]) == 0
    view = orjson.loads(capsys.readouterr().out)
    assert view["tags"]["source_wecom"]["rule"] == "source"
    assert view["aggregates"]["orders"] == 1

    assert main(["profile", "nobody"]) == 1
    assert "no profile for user 'nobody'" in capsys.readouterr().err


def test_the_previous_releases_write_still_works_during_a_rolling_upgrade(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    profile = Engine(RULES).new_profile("u1")
    key, data = store.keys.user("u1"), orjson.dumps(profile.to_dict())
    # ARGV as the previous release sends it: profile, version, source, offset, partition.
    assert redis_client.fcall("tagger_save_profile", 1, key, data, "0", "3", "41", "2") == 1
    assert redis_client.fcall("tagger_save_profile", 1, key, data, "1", "3", "41", "2") == 0
    assert redis_client.fcall("tagger_save_profile", 1, key, data, "1", "", "", "2") == 2
    assert store.offsets("u1") == {"3": 41}
    assert store.load(["u1"])["u1"].stored is not None


def _stored_example(tmp_path: Path, client: redis.Redis) -> tuple[Path, Engine]:
    """The rule set of tests/support/values.py, its events applied and stored in Redis."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(VALUE_RULES, encoding="utf-8")
    engine = Engine(load_rules(rules))
    store = RedisStore(client)
    list(Replay(engine, store).run(VALUE_EVENTS.splitlines()))
    return rules, engine


def test_tagger_profile_shows_values_as_people_read_them(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    rules, _ = _stored_example(tmp_path, redis_client)
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)

    assert main(["profile", "u1", "--rules", str(rules)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  buyer since 2026-01-01T00:00:00.000Z  because joined=null, spend=0.1" in lines
    assert "  regular since 2026-01-06T16:50:42.765Z  because gap=5d 16h" in lines
    assert "  spend = 0.3" in lines
    assert "  gap = 5d 16h" in lines
    assert "  last_at = 2026-01-06T16:50:42.765Z" in lines
    assert "  joined = null" in lines
    assert "events: 2  next deadline: null" in lines

    assert main(["profile", "u1", "--rules", str(rules), "--json"]) == 0
    view = orjson.loads(capsys.readouterr().out)
    assert view["aggregates"] == {
        "orders": 2,
        "spend": 0.3,
        "last_at": "2026-01-06T16:50:42.765Z",
        "gap": 492_642_765,
        "joined": None,
    }


class _View:
    """What a Faust view's ``json`` is given, kept to be read."""

    def json(self, body: Any, status: int = 200, headers: Any = None) -> tuple[Any, int]:
        return body, status


def test_the_profile_web_view_shows_values_in_their_json_form(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    _, engine = _stored_example(tmp_path, redis_client)
    pipeline = Pipeline(engine, RedisStore(redis_client), 65536)
    views = DataViews(pipeline, RedisStore(redis_client), DataAccess(None, loopback=True))
    request = SimpleNamespace(headers={})
    body, status = asyncio.run(views.profile(_View(), request, "u1"))
    assert status == 200
    assert body == profile_record(engine, RedisStore(redis_client).load(["u1"])["u1"])
    assert body["aggregates"]["last_at"] == "2026-01-06T16:50:42.765Z"
    assert body["aggregates"]["spend"] == 0.3 and body["aggregates"]["gap"] == 492_642_765
    assert body["tags"]["buyer"]["values"] == {"joined": None, "spend": 0.1}


def _shape(value: Any) -> Any:
    """A JSON value's shape: objects by key, lists by their items' shapes, else the type."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted({repr(_shape(item)) for item in value})
    return type(value).__name__


def test_replay_the_profile_view_and_tagger_profile_give_one_record(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    rules, engine = _stored_example(tmp_path, redis_client)  # the events, into Redis
    events = tmp_path / "events.jsonl"
    events.write_text(VALUE_EVENTS, encoding="utf-8")
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)
    assert main(["replay", str(events), "--rules", str(rules), "--json"]) == 0
    replayed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    (from_replay,) = [r for r in replayed if r["kind"] == "profile"]
    assert main(["profile", "u1", "--rules", str(rules), "--json"]) == 0
    from_command = orjson.loads(capsys.readouterr().out)
    views = DataViews(
        Pipeline(engine, RedisStore(redis_client), 65536),
        RedisStore(redis_client),
        DataAccess(None, loopback=True),
    )
    body, status = asyncio.run(views.profile(_View(), SimpleNamespace(headers={}), "u1"))
    from_view = orjson.loads(orjson.dumps(body))  # as the view sends it
    assert status == 200
    # The same keys and value forms; for the same events and rules, the same values.
    assert _shape(from_replay) == _shape(from_command) == _shape(from_view)
    assert from_replay == from_command == from_view
    assert set(from_replay) == set(PROFILE_RECORD_SCHEMA["properties"])
    assert from_view["kind"] == "profile" and from_view["tags"]["regular"]["when"]

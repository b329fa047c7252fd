"""``tagger audience TAG`` against a real redis-server: every member once, by id, with when
they got the tag, as CSV or JSON lines; a page of Redis at a time, so a large audience
costs no more memory than a page; an unknown tag exits 2."""

from __future__ import annotations

import csv
import io
import math
import sys
import tracemalloc
from pathlib import Path

import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from streams.cli import main
from streams.cli.audience import PAGE, audience_rows
from streams.local_stack import RedisServer
from streams.redis_store import RedisStore
from taggers.events import format_ts
from taggers.profile import Profile, TagRecord
from tests.support.core import START_MS

pytestmark = pytest.mark.integration
MEMBERS = 3500  # four pages
# Each profile carries ~2 KB of linked ids, so that the whole audience is ~7 MB of JSON.
PADDING = [f"linked-id-{n:04d}-" + "x" * 80 for n in range(20)]


def _record(since: int, expires: int | None = None) -> TagRecord:
    return TagRecord(
        since=since, expires=expires, rule="r", display=None, version="v", values={}, when=""
    )


def _seed(client: redis.Redis, count: int) -> list[str]:
    """``count`` holders of high_value (every tenth with an expiry), saved in batches."""
    store = RedisStore(client)
    users = [f"u{n:05d}" for n in range(count)]
    for start in range(0, count, 500):
        store.save(
            [
                Profile(
                    user,
                    ids=PADDING,
                    tags={
                        "high_value": _record(START_MS + n, START_MS + 9 * n if n % 10 else None)
                    },
                )
                for n, user in enumerate(users[start : start + 500], start)
            ]
        )
    return users


def _run(
    capsys: pytest.CaptureFixture[str], *argv: str, out: Path | None = None
) -> tuple[int, str, str]:
    if out is None:
        code = main(["audience", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    with out.open("w", encoding="utf-8") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", handle)
        code = main(["audience", *argv])
    return code, out.read_text(encoding="utf-8"), capsys.readouterr().err


@pytest.fixture
def redis_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)


@pytest.mark.usefixtures("redis_env")
def test_the_audience_is_every_member_once_with_when_they_joined(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    users = _seed(redis_client, MEMBERS)
    # A member whose profile went away between the range and the read is left out.
    redis_client.zadd("tagger:tag:{high_value}", {"u99999": 0})
    redis_client.config_resetstat()
    code, text, err = _run(capsys, "high_value", out=tmp_path / "a.csv")
    assert code == 0 and err.strip().endswith(f"{MEMBERS} members of high_value from {_where()}")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["user_id", "since", "expires"]
    assert [r[0] for r in rows[1:]] == users
    assert rows[1] == ["u00000", format_ts(START_MS), ""]
    assert rows[2] == ["u00001", format_ts(START_MS + 1), format_ts(START_MS + 9)]
    # A page at a time: one range and one pipeline of profile reads per page.
    stats = redis_client.info("commandstats")
    pages = math.ceil((MEMBERS + 1) / PAGE)
    assert stats["cmdstat_zrange"]["calls"] == pages
    assert stats["cmdstat_hget"]["calls"] == MEMBERS + 1

    code, text, _ = _run(capsys, "high_value", "--format", "jsonl", "--limit", "1001")
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert code == 0 and len(lines) == 1001
    assert lines[1] == {
        "user_id": "u00001",
        "since": format_ts(START_MS + 1),
        "expires": format_ts(START_MS + 9),
    }
    assert [line["user_id"] for line in lines] == users[:1001]


@pytest.mark.usefixtures("redis_env")
def test_memory_stays_at_a_page_however_large_the_audience(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _seed(redis_client, MEMBERS)
    whole = sum(
        len(redis_client.hget(f"tagger:u:{{u{n:05d}}}", "p") or b"") for n in range(MEMBERS)
    )
    peaks = []
    # A first run imports and compiles what every run needs once (the rules' lists...).
    for limit in (1, PAGE, MEMBERS):
        tracemalloc.start()
        try:
            code, _, _ = _run(capsys, "high_value", "--limit", str(limit), out=tmp_path / "a.csv")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert code == 0
    _, one_page, all_pages = peaks
    # Four pages cost what one does (a page's profiles, ~2 MB, and the rules), and less than
    # the audience's profiles (~7 MB), which a read of them all at once would hold.
    assert all_pages < one_page * 1.4, peaks
    assert all_pages < whole * 0.6, (all_pages, whole)


@pytest.mark.usefixtures("redis_env")
def test_an_unknown_tag_exits_2_and_a_known_empty_one_prints_no_member(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(redis_client, 3)
    code, out, err = _run(capsys, "high_valeu")
    assert code == 2 and out == ""
    assert "error: no tag 'high_valeu'" in err and "did you mean 'high_value'?" in err
    code, out, err = _run(capsys, "koc")
    assert code == 0 and out == "user_id,since,expires\n"
    code, out, err = _run(capsys, "interest_美妆", "--format", "jsonl")
    assert code == 0 and out == ""


def _where() -> str:
    from streams.redis_store import redacted  # noqa: PLC0415
    from streams.settings import load_settings  # noqa: PLC0415

    return redacted(load_settings().redis_url)


def test_the_pages_read_alike_on_a_redis_cluster(cluster_client: RedisCluster) -> None:
    # The members' profiles lie in other slots than the audience: the pipeline spans nodes.
    store = RedisStore(cluster_client)
    users = [f"用户{n}" for n in range(25)]
    store.save(
        [Profile(u, tags={"high_value": _record(START_MS + n)}) for n, u in enumerate(users)]
    )
    rows = list(audience_rows(store, "high_value", None))
    assert [row["user_id"] for row in rows] == sorted(users)
    assert {row["since"] for row in rows} == {format_ts(START_MS + n) for n in range(25)}
    assert len(list(audience_rows(store, "high_value", 7))) == 7

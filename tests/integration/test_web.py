"""The worker's HTTP port: only our routes, a bearer token on the data views, odd ids readable.

The route list is read from the worker's own aiohttp app as ``create_app`` builds it; the
token, the probes, Faust's default paths and URL-encoded ids are tried on a running
``tagger run``.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.app import create_app
from streams.local_stack import RedisServer, TansuBroker, start_worker
from streams.redis_store import Client
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.web import CLOSED, UNAUTHORIZED, DataAccess, Web, is_loopback
from streams.worker.openapi import openapi_document
from taggers.bundled import BUNDLED_RULES
from taggers.ruleset import load_rules
from tests.support.openapi import response_validator
from tests.support.stack import (
    all_applied,
    assigned_partitions,
    pipeline_settings,
    produce,
    running_worker,
    stop_worker,
    wait_for,
)

TOKEN = "web-token-5f0c1a9e7b"
RULES = load_rules(BUNDLED_RULES)
# Ids the event contract allows, each with a character that means something in a URL.
ODD_IDS = [
    "用户/一号",
    "a/b/c",
    "100%",
    "%2F",
    "why?not",
    "a#b",
    "a+b",
    "two words",
    " lead",
    "semi;colon",
    "amp&eq=1",
    "back\\slash",
    "quote'\"",
    ".",
    "..",
    "emoji-🛒",
]


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def request(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    """Status and body of a request, whatever the status."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers, method=method), timeout=10
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_the_worker_serves_our_routes_and_no_route_of_faust(redis_server: RedisServer) -> None:
    settings = Settings(redis_url=redis_server.url, web_token=TOKEN)
    app = create_app(settings, RULES, BUNDLED_RULES)
    web = app.web
    assert isinstance(web, Web)
    web.init_server()  # what the worker does when its web server starts
    routes = {
        (route.method, route.resource.canonical)
        for route in web.web_app.router.routes()
        if route.resource is not None
    }
    ours = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/profiles/{user_id}",
        "/tags/{tag}/members",
    ]
    assert routes == {(method, path) for path in ours for method in ("GET", "HEAD")}
    # Every route served is described, and every route described is served.
    described = openapi_document()["paths"]
    assert {(method, path) for method, path in routes if method == "GET"} == {
        (method.upper(), path) for path, item in described.items() for method in item
    }


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("worker.internal", False),
    ],
)
def test_loopback_binds(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_data_access_by_token_and_bind() -> None:
    on_loopback = DataAccess.from_settings(Settings(web_bind="127.0.0.1"))
    assert on_loopback.refusal(None) is None and not on_loopback.closed
    everywhere = DataAccess.from_settings(Settings(web_bind="0.0.0.0"))
    assert everywhere.closed and everywhere.refusal(f"Bearer {TOKEN}") is CLOSED
    # A token, once set, is asked for on every bind.
    for bind in ("127.0.0.1", "0.0.0.0"):
        access = DataAccess.from_settings(Settings(web_bind=bind, web_token=TOKEN))
        assert access.refusal(f"Bearer {TOKEN}") is None
        assert access.refusal(f"bearer   {TOKEN}") is None
        for header in (None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN):
            assert access.refusal(header) is UNAUTHORIZED, header


@given(st.text(max_size=40))
def test_no_other_header_opens_the_data_views(header: str) -> None:
    access = DataAccess(TOKEN.encode(), loopback=True)
    if header.partition(" ")[2].strip() != TOKEN:
        assert access.refusal(header) is UNAUTHORIZED


def test_a_guessable_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(web_token="short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(web_token=" " * 20)
    assert TOKEN not in repr(Settings(web_token=TOKEN))


def test_the_running_worker_guards_data_views_and_reads_odd_ids(
    broker: TansuBroker, redis_server: RedisServer, redis_client: Client, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, redis_server, web_token=TOKEN)
    ensure_topics(settings)
    stream: list[str | bytes] = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "user_id": user,
                "type": "view",
                "ts": 1_767_225_600_000 + n,
                "channel": "wecom",
                "props": {"category": "美妆"},
            }
        ).decode()
        for n, user in enumerate(ODD_IDS)
    ]
    produce(settings, stream)
    web = f"http://127.0.0.1:{settings.web_port}"
    with running_worker(settings, tmp_path):
        wait_for(lambda: assigned_partitions(settings) > 0, 60, "the worker to be ready")
        wait_for(lambda: all_applied(redis_client, settings, stream), 60, "the events")
        # Probes and metrics need no token.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert request(web + path)[0] == 200, path
        # Faust's own views are not there (the router told host, topics and assignment).
        for path in ("/", "/router/", "/router/topics/", "/table/", "/stats/", "/graph/"):
            assert request(web + path, TOKEN)[0] == 404, path
        # The data views: 401 without the token or with a wrong one, 200 with it.
        audience = f"{web}/tags/source_wecom/members?limit=100"
        some = f"{web}/profiles/{urllib.parse.quote(ODD_IDS[0], safe='')}"
        for url in (audience, some):
            for token in (None, "wrong-token-of-some-length", TOKEN + "x"):
                status, body = request(url, token)
                assert status == 401, (url, token)
                assert b"user" not in body and ODD_IDS[0].encode() not in body
            assert request(url, token=None, method="HEAD")[0] == 401
        status, body = request(audience, TOKEN)
        assert status == 200
        assert sorted(orjson.loads(body)["members"]) == sorted(ODD_IDS)
        # Every id the contract allows reads back over HTTP, URL-encoded.
        for user in ODD_IDS:
            status, body = request(f"{web}/profiles/{urllib.parse.quote(user, safe='')}", TOKEN)
            assert status == 200, user
            assert orjson.loads(body)["user_id"] == user
        status, body = request(f"{web}/profiles/nobody", TOKEN)
        assert status == 404 and orjson.loads(body)["error"] == "no profile for user 'nobody'"


def test_off_loopback_without_a_token_the_data_views_are_closed(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, redis_server, web_bind="0.0.0.0", log_format="json")
    ensure_topics(settings)
    web = f"http://127.0.0.1:{settings.web_port}"
    worker = start_worker(settings, tmp_path, loglevel="info")  # Faust's lines as well
    try:
        wait_for(lambda: assigned_partitions(settings) > 0, 60, "the worker to be ready")
        assert request(f"{web}/healthz")[0] == 200
        assert request(f"{web}/metrics")[0] == 200
        for path in ("/profiles/u1", "/tags/source_wecom/members"):
            status, body = request(web + path, TOKEN)
            assert status == 403 and b"TAGGER_WEB_TOKEN" in body, path
    finally:
        stop_worker(worker)
    lines = (tmp_path / "worker.log").read_text(encoding="utf-8").splitlines()
    # JSON lines, every one (Faust's and mode's own too), with the fields of the call.
    records = [orjson.loads(line) for line in lines]
    warned = [r for r in records if "TAGGER_WEB_TOKEN" in r["message"]]
    assert len(warned) == 1  # once at start, not per request
    assert warned[0]["web_bind"] == "0.0.0.0" and warned[0]["level"] == "WARNING"
    libraries = {r["logger"].split(".")[0] for r in records}
    assert {"faust", "mode", "aiokafka"} <= libraries, libraries


def test_a_running_workers_answers_are_as_its_openapi_description_says(
    broker: TansuBroker, redis_server: RedisServer, redis_client: Client, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, redis_server, web_token=TOKEN)
    ensure_topics(settings)
    stream: list[str | bytes] = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "user_id": user,
                "type": "purchase",
                "ts": 1_767_225_600_000 + n,
                "channel": "wecom",
                "props": {"amount": 1500, "order_id": f"o{n}"},
            }
        ).decode()
        for n, user in enumerate(["u1", "u2", "u3"])
    ]
    produce(settings, stream)
    web = f"http://127.0.0.1:{settings.web_port}"
    with running_worker(settings, tmp_path):
        wait_for(lambda: assigned_partitions(settings) > 0, 60, "the worker to be ready")
        wait_for(lambda: all_applied(redis_client, settings, stream), 60, "the events")
        status, body = request(f"{web}/openapi.json")
        assert status == 200
        document = orjson.loads(body)
        assert document == openapi_document()
        asked = {
            ("/healthz", "/healthz", None): "200",
            ("/readyz", "/readyz", None): "200",
            ("/openapi.json", "/openapi.json", None): "200",
            ("/profiles/{user_id}", "/profiles/u1", TOKEN): "200",
            ("/profiles/{user_id}", "/profiles/nobody", TOKEN): "404",
            ("/profiles/{user_id}", "/profiles/u1", None): "401",
            ("/tags/{tag}/members", "/tags/high_value/members?limit=2", TOKEN): "200",
            ("/tags/{tag}/members", "/tags/koc/members", TOKEN): "200",
            ("/tags/{tag}/members", "/tags/high_valeu/members", TOKEN): "404",
            ("/tags/{tag}/members", "/tags/high_value/members?limit=0", TOKEN): "400",
            ("/tags/{tag}/members", "/tags/high_value/members", "wrong-token-of-length"): "401",
        }
        bodies = {}
        for (path, url, token), want in asked.items():
            status, body = request(web + url, token)
            assert str(status) == want, url
            bodies[url, want] = orjson.loads(body)
            response_validator(document, path, want).validate(bodies[url, want])
        status, body = request(f"{web}/metrics")
        assert status == 200 and b"# TYPE" in body
    assert bodies["/tags/high_value/members?limit=2", "200"] == {
        "tag": "high_value",
        "members": ["u1", "u2"],
        "next": "u2",
    }
    assert bodies["/tags/koc/members", "200"] == {"tag": "koc", "members": [], "next": None}
    assert bodies["/tags/high_valeu/members", "404"]["did_you_mean"] == "high_value"
    assert bodies["/profiles/u1", "200"]["tags"]["high_value"]["values"]["spend_90d"] == 1500
    # Each JSON answer the document describes was had, but those of a closed port (403)
    # and of Redis away (503), whose bodies tests/unit/test_openapi.py validates.
    described = {
        (path, status)
        for path, item in document["paths"].items()
        for status, answer in item["get"]["responses"].items()
        if "application/json" in answer.get("content", {})
    }
    had = {(path, want) for (path, _, _), want in asked.items()}
    assert described - had == {
        (path, status)
        for path in ("/profiles/{user_id}", "/tags/{tag}/members")
        for status in ("403", "503")
    } | {("/readyz", "503")}

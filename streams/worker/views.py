"""The worker's HTTP routes: probes, metrics, the profile and audience views, and their
OpenAPI description (``streams.worker.openapi``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from faust.types import TP

from streams import metrics
from streams.redis_retry import REDIS_DOWN
from streams.web import DataAccess
from streams.worker.routing import Topics
from taggers.identity import load_person
from taggers.pipeline import Pipeline
from taggers.profile_record import profile_record
from taggers.store import OperationsStore
from taggers.tag_names import tag_declared, unknown_tag

if TYPE_CHECKING:  # the app module wires these views: no import cycle at run time
    from streams.app import TaggerApp
    from streams.live_rules import LiveRules

REDIS_UNREACHABLE = {"error": "Redis is unreachable, try again"}
DEFAULT_PAGE = 100
MAX_PAGE = 10_000


def add_views(
    app: TaggerApp,
    pipeline: Pipeline,
    store: OperationsStore,
    access: DataAccess,
    topics: Topics,
) -> None:
    """GET /metrics (Prometheus text); GET /healthz (alive) and /readyz (input partitions
    assigned, Redis reachable, rules loaded: else 503 with the problems); GET
    /profiles/{user_id} and GET /tags/{tag}/members?after=&limit= as JSON, for those
    ``access`` lets in; GET /openapi.json, the description of them all. These are the only
    routes the worker serves."""
    from streams.worker.openapi import openapi_json  # noqa: PLC0415 (it imports this module)

    data = DataViews(pipeline, store, access)
    description = openapi_json()

    # Faust makes each handler a View's method (it is given the view first): functions.
    async def profile_view(view: Any, request: Any, user_id: str) -> Any:
        return await data.profile(view, request, user_id)

    async def members_view(view: Any, request: Any, tag: str) -> Any:
        return await data.members(view, request, tag)

    async def ready_view(view: Any, request: Any) -> Any:
        assigned = topics.assigned(app.consumer.assignment())
        body, status = readiness(assigned, store, app.live_rules)
        return view.json(body, status=status)

    async def openapi_view(view: Any, request: Any) -> Any:
        return view.bytes(description, content_type="application/json")

    app.page("/healthz")(health_view)
    app.page("/readyz")(ready_view)
    app.page("/metrics")(metrics_view)
    app.page("/openapi.json")(openapi_view)
    app.page("/profiles/{user_id}")(profile_view)
    app.page("/tags/{tag}/members")(members_view)


async def metrics_view(view: Any, request: Any) -> Any:
    """GET /metrics."""
    # In headers: aiohttp refuses a content_type argument that carries a charset.
    return view.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


async def health_view(view: Any, request: Any) -> Any:
    """GET /healthz."""
    return view.json({"status": "ok"})  # the loop answers: the process is alive


class DataViews:
    """The views that show users: a profile, a tag's audience. A reader gets a 503 at
    once while Redis is away; only the worker's own work waits."""

    def __init__(self, pipeline: Pipeline, store: OperationsStore, access: DataAccess) -> None:
        self.pipeline = pipeline  # its engine describes a profile (it may reload)
        self.store = store
        self.access = access

    async def profile(self, view: Any, request: Any, user_id: str) -> Any:
        """GET /profiles/{user_id}."""
        if (refused := self.access.check(view, request)) is not None:
            return refused
        try:
            found = load_person(self.store, user_id)
        except REDIS_DOWN:
            return view.json(REDIS_UNREACHABLE, status=503)
        if found is None:
            return view.json({"error": f"no profile for user {user_id!r}"}, status=404)
        return view.json(profile_record(self.pipeline.engine, found))

    async def members(self, view: Any, request: Any, tag: str) -> Any:
        """GET /tags/{tag}/members?after=&limit=: a page of the audience; 404 for a tag the
        rules cannot give and no user holds (a typo is not an empty audience)."""
        if (refused := self.access.check(view, request)) is not None:
            return refused
        query = request.query
        try:
            limit = min(int(query.get("limit", DEFAULT_PAGE)), MAX_PAGE)
        except ValueError:
            limit = 0
        if limit < 1:
            return view.json({"error": "limit must be a whole number from 1"}, status=400)
        after = query.get("after", "")
        rules = self.pipeline.engine.rules
        try:
            members = self.store.tag_members(tag, after=after, limit=limit)
            # Only an empty page asks whether the tag exists: a held tag does.
            unknown = (
                not members
                and not tag_declared(rules, tag)
                and not (after and self.store.tag_members(tag, limit=1))
            )
        except REDIS_DOWN:
            return view.json(REDIS_UNREACHABLE, status=503)
        if unknown:
            return view.json(unknown_tag(rules, tag), status=404)
        more = len(members) == limit
        return view.json({"tag": tag, "members": members, "next": members[-1] if more else None})


class Pingable(Protocol):
    """A store that can say whether it is reachable."""

    def ping(self) -> None:
        """Raise one of ``REDIS_DOWN`` if the store is unreachable."""
        ...


def readiness(
    assigned: Sequence[TP], store: Pingable, live: LiveRules | None
) -> tuple[dict[str, Any], int]:
    """The /readyz body and status: ready with input partitions assigned (``assigned``),
    the store reachable and rules loaded; else 503 with the problems."""
    problems = []
    if not assigned:
        problems.append("no partitions assigned")
    try:
        store.ping()
    except REDIS_DOWN:
        problems.append("Redis unreachable")
    if live is None:
        problems.append("no rules loaded")
    body = {
        "ready": not problems,
        "partitions": len(assigned),
        "rules_version": None if live is None else live.rules.version,
        "problems": problems,
    }
    return body, 503 if problems else 200

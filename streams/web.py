"""The worker's HTTP server: only the routes we wrote, and a bearer token on the data views.

Faust's web driver mounts views of its own on every app: ``/router`` (the host name,
topics and partition assignment of each worker), ``/table``, a production index at ``/``
and, with ``debug``, statistics and a service graph. The worker needs none of them, so
its driver mounts no blueprint: what it serves is what ``streams.worker.views.add_views`` adds.

The profile and audience views hand out user ids and their tags. With
``TAGGER_WEB_TOKEN`` set they need ``Authorization: Bearer <token>``; without one they
answer only on a loopback bind (a developer's machine, ``tagger demo``), and elsewhere
refuse with 403 and say which setting opens them. Probes and ``/metrics`` stay open: a
kubelet and Prometheus carry no token, and neither shows a user.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any

from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.settings import Settings, revealed


class Web(AiohttpWeb):
    """Faust's aiohttp driver without Faust's own views (router, tables, index, stats)."""

    default_blueprints = ()
    production_blueprints = ()
    debug_blueprints = ()
    optional_blueprints = ()


def is_loopback(bind: str) -> bool:
    """Whether a bind address only takes connections from this machine."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request may not read the data views, as an HTTP status and a JSON body."""

    status: int
    body: dict[str, str]
    headers: dict[str, str]


UNAUTHORIZED = Refusal(
    401,
    {"error": "this view needs Authorization: Bearer <TAGGER_WEB_TOKEN>"},
    {"WWW-Authenticate": 'Bearer realm="tagger"'},
)
CLOSED = Refusal(
    403,
    {
        "error": "profiles and audiences are served off loopback only with a token:"
        " set TAGGER_WEB_TOKEN (or bind TAGGER_WEB_BIND to 127.0.0.1)"
    },
    {},
)


@dataclass(frozen=True, slots=True)
class DataAccess:
    """Who may read profiles and audiences: the holder of the token, or, with no token
    set, anyone who reaches a loopback bind."""

    token: bytes | None
    loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> DataAccess:
        """The access the settings give (``TAGGER_WEB_TOKEN``, ``TAGGER_WEB_BIND``)."""
        token = revealed(settings.web_token)
        return cls(
            None if token is None else token.strip().encode(), is_loopback(settings.web_bind)
        )

    @property
    def closed(self) -> bool:
        """Whether no request can read the data views (no token, not on loopback)."""
        return self.token is None and not self.loopback

    def refusal(self, authorization: str | None) -> Refusal | None:
        """Why a request with this ``Authorization`` header is refused; None: it is not."""
        if self.token is None:
            return None if self.loopback else CLOSED
        scheme, _, given = (authorization or "").partition(" ")
        # Compared in constant time, so that the answer's timing does not spell it out.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token
        ):
            return UNAUTHORIZED
        return None

    def check(self, view: Any, request: Any) -> Any | None:
        """The response refusing this request, or None to serve it."""
        refusal = self.refusal(request.headers.get("Authorization"))
        if refusal is None:
            return None
        return view.json(refusal.body, status=refusal.status, headers=refusal.headers)

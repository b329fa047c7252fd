"""The OpenAPI 3.1 description of the worker's HTTP routes (``streams.worker.views``),
served at ``GET /openapi.json`` and kept in docs/openapi.json (a test checks that file is
this document, and that the routes described are the routes served).

Write docs/openapi.json afresh after a change: ``python -m streams.worker.openapi >
docs/openapi.json``.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import orjson

from streams.worker.views import DEFAULT_PAGE, MAX_PAGE
from taggers.profile_record import PROFILE_RECORD_SCHEMA

API_VERSION: Final = "1.0.0"
"""The version of this description: bump it when a route, parameter or body changes."""

_ERROR: Final = {
    "type": "object",
    "description": "what went wrong, in a sentence",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
    "additionalProperties": False,
}
_UNKNOWN_TAG: Final = {
    "type": "object",
    "description": "a tag the rules cannot give and no user holds (a typo, most often)",
    "properties": {
        "error": {"type": "string", "description": "names the tag and the closest known"},
        "tag": {"type": "string", "description": "the tag asked for"},
        "tags": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the tags the rules give (an open family as NAME_<value>)",
        },
        "did_you_mean": {"type": ["string", "null"], "description": "the closest known tag"},
    },
    "required": ["error", "tag", "tags", "did_you_mean"],
    "additionalProperties": False,
}
_MEMBERS: Final = {
    "type": "object",
    "description": "a page of a tag's audience, sorted by user id",
    "properties": {
        "tag": {"type": "string"},
        "members": {"type": "array", "items": {"type": "string"}},
        "next": {
            "type": ["string", "null"],
            "description": "the `after` of the next page; null: this is the last",
        },
    },
    "required": ["tag", "members", "next"],
    "additionalProperties": False,
}
_READINESS: Final = {
    "type": "object",
    "properties": {
        "ready": {"type": "boolean"},
        "partitions": {"type": "integer", "minimum": 0, "description": "input partitions held"},
        "rules_version": {"type": ["string", "null"]},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["ready", "partitions", "rules_version", "problems"],
    "additionalProperties": False,
}
_HEALTH: Final = {
    "type": "object",
    "properties": {"status": {"const": "ok"}},
    "required": ["status"],
    "additionalProperties": False,
}
SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Error": _ERROR,
    "UnknownTag": _UNKNOWN_TAG,
    "Members": _MEMBERS,
    "Profile": PROFILE_RECORD_SCHEMA,
    "Readiness": _READINESS,
    "Health": _HEALTH,
}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _guarded(operation: dict[str, Any]) -> dict[str, Any]:
    """A data view's operation: it shows users, so a token is needed, or a loopback bind
    with none set (see ``streams.web``); and it answers at once while Redis is away."""
    responses = operation["responses"]
    responses["401"] = _json("TAGGER_WEB_TOKEN is set and the request does not carry it", "Error")
    responses["403"] = _json("no TAGGER_WEB_TOKEN is set and the bind is not loopback", "Error")
    responses["503"] = _json("Redis is unreachable (answered at once)", "Error")
    return {**operation, "security": [{"bearer": []}, {}]}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _paths() -> dict[str, Any]:
    members = {
        "summary": "a page of a tag's audience",
        "operationId": "tagMembers",
        "parameters": [
            _path_parameter("tag", "the tag's name"),
            {
                "name": "after",
                "in": "query",
                "description": "start after this user id (the previous page's `next`)",
                "schema": {"type": "string", "default": ""},
            },
            {
                "name": "limit",
                "in": "query",
                "description": f"the most members on the page (above {MAX_PAGE}: {MAX_PAGE})",
                "schema": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE},
            },
        ],
        "responses": {
            "200": _json("the page (empty: a known tag no user holds)", "Members"),
            "400": _json("limit is not a whole number from 1", "Error"),
            "404": _json("no such tag", "UnknownTag"),
        },
    }
    profile = {
        "summary": "a person's profile, by any of their ids",
        "operationId": "profile",
        "parameters": [_path_parameter("user_id", "any of the person's ids, URL-encoded")],
        "responses": {
            "200": _json("the profile (the record `tagger replay --json` ends with)", "Profile"),
            "404": _json("no profile under this id", "Error"),
        },
    }
    return {
        "/healthz": {
            "get": {
                "summary": "the process is alive",
                "operationId": "health",
                "responses": {"200": _json("alive", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "ready: partitions assigned, Redis reachable, rules loaded",
                "operationId": "ready",
                "responses": {
                    "200": _json("ready", "Readiness"),
                    "503": _json("not ready, with the problems", "Readiness"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "the Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this description",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "an OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/profiles/{user_id}": {"get": _guarded(profile)},
        "/tags/{tag}/members": {"get": _guarded(members)},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every route the worker serves."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tagger worker",
            "version": API_VERSION,
            "description": "The worker's HTTP port (TAGGER_WEB_PORT): probes, metrics,"
            " and the profile and audience views (docs/operations.md, Reading profiles).",
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "TAGGER_WEB_TOKEN; with none set, a loopback bind needs none",
                }
            },
        },
    }


def openapi_json() -> bytes:
    """The document as docs/openapi.json holds it: indented, keys in order, a newline."""
    return orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(openapi_json())

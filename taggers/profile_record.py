"""The ``profile`` record: one person as `tagger replay --json` ends with, as
``GET /profiles/{user_id}`` answers and as ``tagger profile --json`` prints; one builder
for the three, so that a consumer reads them with one parser. ``PROFILE_RECORD_SCHEMA``
is its JSON Schema (the worker's OpenAPI description uses it)."""

from __future__ import annotations

from typing import Any, Final

from taggers.engine import Engine
from taggers.profile import Profile


def profile_record(engine: Engine, profile: Profile, now: int | None = None) -> dict[str, Any]:
    """A profile as people and marketing systems read it (JSON-ready), with
    ``"kind": "profile"``: the engine's description of it, aggregates as of ``now`` (None:
    the profile's own clock, the time it was last brought to)."""
    return {"kind": "profile", **engine.describe(profile, now)}


_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_TAG_RECORD: Final = {
    "type": "object",
    "description": "why and since when the person holds the tag",
    "properties": {
        "display": {**_TEXT_OR_NULL, "description": "the tag's display name"},
        "since": {"type": "string", "format": "date-time"},
        "expires": {**_TIME, "description": "when it expires unless confirmed; null: never"},
        "rule": {**_TEXT_OR_NULL, "description": "the rule that gave it"},
        "version": {**_TEXT_OR_NULL, "description": "the rule-set version that gave it"},
        "when": {**_TEXT_OR_NULL, "description": "the rule's condition"},
        "values": {"type": "object", "description": "what the rule read, in JSON form"},
    },
    "required": ["display", "since", "expires", "rule", "version", "when", "values"],
    "additionalProperties": False,
}
PROFILE_RECORD_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "title": "profile",
    "description": "a person: stage, tags with why and since when, aggregate values",
    "properties": {
        "kind": {"const": "profile"},
        "user_id": {"type": "string", "description": "the person's id"},
        "ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the person's other ids (linked to it)",
        },
        "opted_out": {"type": "boolean", "description": "opted out of marketing"},
        "stage": {**_TEXT_OR_NULL, "description": "the lifecycle stage"},
        "stage_display": {**_TEXT_OR_NULL, "description": "the stage's display name"},
        "stage_since": _TIME,
        "tags": {
            "type": "object",
            "additionalProperties": _TAG_RECORD,
            "description": "the tags held, by name",
        },
        "aggregates": {
            "type": "object",
            "description": "every declared aggregate's value in JSON form (null: none)",
        },
        "events": {"type": "integer", "minimum": 0, "description": "events applied"},
        "next_deadline": {**_TIME, "description": "when time alone changes it next"},
    },
    "required": [
        "kind",
        "user_id",
        "ids",
        "opted_out",
        "stage",
        "stage_display",
        "stage_since",
        "tags",
        "aggregates",
        "events",
        "next_deadline",
    ],
    "additionalProperties": False,
}

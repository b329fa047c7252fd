"""The JSON Schema of the outputs (``tagger schema outputs``), made from the output kinds'
declarations in ``taggers.outputs``: the keys ``output_to_dict`` writes are the keys each
kind's schema requires, so a kind or a key without a schema cannot be serialised.

One document: ``$defs`` holds each kind's schema (closed: the keys it writes and no
other, each with its value's schema, ``kind`` and ``schema_version`` constants), and the
document picks one by the record's ``kind`` (``if``/``then``), so that a stock validator
checks a record read off any output topic.
"""

from __future__ import annotations

from typing import Any, Final

from taggers.json_schema import identified
from taggers.outputs import ID_SCHEMA, OUTPUT_KINDS, VALUES_SCHEMA, JsonSchema, OutputKind

OUTPUT_ID_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": "^[0-9a-f]{24}$",
    "description": "derived from the cause: the same input gives the same id (drop duplicates)",
}
AT_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
    "description": "when it happened: ISO-8601 UTC with milliseconds",
}
REASON_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "why: the rule, the rule set's version, the values it read",
    "properties": {
        "rule": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1, "description": "the rule set's version"},
        "values": VALUES_SCHEMA,
        "note": {"type": "string", "description": "the expression that decided, or what"},
    },
    "required": ["rule", "version", "values"],
    "additionalProperties": False,
}


def _common(kind: OutputKind[Any]) -> dict[str, JsonSchema]:
    """The schemas of the keys every output has (``HEAD_KEYS`` and ``TAIL_KEYS``)."""
    return {
        "kind": {"const": kind.name},
        "schema_version": {"const": kind.version},
        "id": OUTPUT_ID_SCHEMA,
        "user_id": ID_SCHEMA | {"description": "the id the event came under"},
        "person_id": ID_SCHEMA | {"description": "the person (the message key)"},
        "at": AT_SCHEMA,
        "reason": REASON_SCHEMA,
    }


def kind_schema(kind: OutputKind[Any]) -> dict[str, Any]:
    """The JSON Schema of one kind's records: its keys, in the order they are written, all
    required (a missing value is null) and no other."""
    known = _common(kind) | dict(kind.fields)
    missing = [key for key in kind.keys if key not in known]
    if missing:  # a key in HEAD_KEYS or TAIL_KEYS that _common does not describe
        raise ValueError(f"{kind.name}: no schema for {missing}")
    return {
        "title": kind.name,
        "type": "object",
        "properties": {key: known[key] for key in kind.keys},
        "required": list(kind.keys),
        "additionalProperties": False,
    }


def outputs_json_schema() -> dict[str, Any]:
    """The JSON Schema of a record of any output kind (``tagger schema outputs``)."""
    names = [kind.name for kind in OUTPUT_KINDS]
    return identified(
        "outputs",
        {
            "title": "Output",
            "description": (
                "One output record: the value of a message on an output topic, or an output"
                " line of tagger replay --json. Its kind names which of $defs it is."
            ),
            "type": "object",
            "properties": {
                "kind": {"enum": names},
                "schema_version": {"type": "integer", "minimum": 1},
            },
            "required": ["kind", "schema_version"],
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                    "then": {"$ref": f"#/$defs/{name}"},
                }
                for name in names
            ],
            "$defs": {kind.name: kind_schema(kind) for kind in OUTPUT_KINDS},
        },
    )

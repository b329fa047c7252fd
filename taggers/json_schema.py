"""What every JSON Schema ``tagger schema`` prints starts with: its dialect and its id.

A schema names its dialect (``$schema``), so that a validator knows the rules it is
written in (pydantic writes draft 2020-12), and an id (``$id``) by which other schemas and
the CloudEvents ``dataschema`` of an output name it (docs/outputs.md). The ids are URNs:
the project has no web address of its own to publish schemas under, and an id need not be
fetchable, only stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX: Final = "urn:realtime-tagger:schema:"


def schema_id(name: str) -> str:
    """The ``$id`` of the schema ``tagger schema NAME`` prints."""
    return f"{ID_PREFIX}{name}"


def identified(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` as a document of its own: ``$schema`` and ``$id`` first, then its keys."""
    return {"$schema": DIALECT, "$id": schema_id(name), **schema}

"""Validators of the worker's answers against its OpenAPI description
(``streams.worker.openapi``), by stock JSON Schema 2020-12 (OpenAPI 3.1's dialect)."""

from __future__ import annotations

from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:tagger:openapi"


def response_validator(document: dict[str, Any], path: str, status: str) -> Any:
    """A validator of the JSON body of a GET of ``path`` answered with ``status``, as the
    document describes it (its ``$ref`` resolved in the document)."""
    response = document["paths"][path]["get"]["responses"][status]
    schema = response["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = {"$ref": DOCUMENT_URI + schema["$ref"]}
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.FormatChecker()
    )

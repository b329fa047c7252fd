"""The worker's OpenAPI description: a valid OpenAPI 3.1 document (checked by a stock
validator), kept in docs/openapi.json as the worker serves it, and its schemas those of
what the views answer. That its paths are the worker's routes, and that a running worker's
answers validate, is tests/integration/test_web.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from openapi_spec_validator import validate

from streams.cli import main
from streams.web import CLOSED, UNAUTHORIZED
from streams.worker.openapi import openapi_document, openapi_json
from streams.worker.views import REDIS_UNREACHABLE, readiness
from tests.support import ROOT
from tests.support.openapi import response_validator
from tests.support.values import EVENTS, RULES

DOCUMENT = openapi_document()


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)  # raises with the first problem
    broken = orjson.loads(openapi_json())
    del broken["paths"]["/tags/{tag}/members"]["get"]["parameters"][0]  # {tag} undeclared
    with pytest.raises(Exception, match="tag"):
        validate(broken)


def test_docs_openapi_json_is_the_document_the_worker_serves() -> None:
    # Written afresh by: python -m streams.worker.openapi > docs/openapi.json
    assert (ROOT / "docs" / "openapi.json").read_bytes() == openapi_json()


def test_every_reference_resolves() -> None:
    refs = {r for r in _refs(DOCUMENT)}
    assert refs == {f"#/components/schemas/{name}" for name in DOCUMENT["components"]["schemas"]}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_replays_profile_records_validate_and_a_changed_one_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(EVENTS, encoding="utf-8")
    assert (
        main(
            ["replay", str(tmp_path / "events.jsonl"), "--rules", str(tmp_path / "rules"), "--json"]
        )
        == 0
    )
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    (record,) = [r for r in records if r["kind"] == "profile"]
    validator = response_validator(DOCUMENT, "/profiles/{user_id}", "200")
    validator.validate(record)
    for broken in (
        {k: v for k, v in record.items() if k != "stage_since"},
        {**record, "tags": sorted(record["tags"])},  # the old list of names
        {**record, "extra": 1},
        {**record, "tags": {"buyer": {**record["tags"]["buyer"], "since": 5}}},
    ):
        assert not validator.is_valid(broken), broken


def test_the_refusals_and_the_answers_while_redis_is_away_validate() -> None:
    for path in ("/profiles/{user_id}", "/tags/{tag}/members"):
        response_validator(DOCUMENT, path, "403").validate(CLOSED.body)
        response_validator(DOCUMENT, path, "401").validate(UNAUTHORIZED.body)
        response_validator(DOCUMENT, path, "503").validate(REDIS_UNREACHABLE)
    body, status = readiness([], _Away(), None)
    assert status == 503
    response_validator(DOCUMENT, "/readyz", "503").validate(body)
    assert not response_validator(DOCUMENT, "/readyz", "503").is_valid({**body, "ready": "no"})


class _Away:
    def ping(self) -> None:
        raise redis.ConnectionError("refused")

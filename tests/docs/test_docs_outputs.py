"""docs/outputs.md's Python, run over real outputs (the bundled pack replayed over a
simulated shop, as the worker would route them): the schema check passes on them and
fails on a broken record, the consumer keeps the audience the profiles hold, the
CloudEvent is one by the rules of CloudEvents 1.0 and is what the mapping table says.
(tests/integration/test_contract.py runs the consumer against a real broker.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from streams.cli import main
from streams.settings import Settings
from streams.worker.routing import Outgoing, Topics, routed
from taggers.outputs import Output, output_to_dict
from taggers.pipeline import Prepared
from tests.support import ROOT
from tests.support.contract import (
    CHECK,
    CLOUDEVENT,
    CONSUMER,
    OUTPUTS_PAGE,
    SIMULATE_ARGS,
    docs_block,
    replayed,
    run_block,
)
from tests.support.markdown import Page, spans, table

OUTPUTS = OUTPUTS_PAGE
PAGES = [Page(ROOT / "README.md"), *(Page(p) for p in sorted((ROOT / "docs").glob("*.md")))]
PYTHON = [b for page in PAGES for b in page.blocks if b.lang == "python"]
block = docs_block


def test_every_python_block_is_one_these_tests_run() -> None:
    assert sorted(b.id for b in PYTHON) == sorted(
        block(m).id for m in (CHECK, CONSUMER, CLOUDEVENT)
    )


# --- the schema check --------------------------------------------------------------------


def test_the_schema_check_passes_on_replays_outputs_and_fails_on_a_broken_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def tagger(*argv: str) -> str:
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    Path("outputs.schema.json").write_text(tagger("schema", "outputs"), encoding="utf-8")
    Path("events.jsonl").write_text(tagger("simulate", *SIMULATE_ARGS), encoding="utf-8")
    replay = tagger("replay", "events.jsonl", "--json")
    Path("outputs.jsonl").write_text(replay, encoding="utf-8")
    run_block(block(CHECK))  # every output of the replay is valid
    first = json.loads(replay.splitlines()[0])
    broken = first | {"op": "toggle"} if first["kind"] == "tag_change" else first | {"id": 1}
    Path("outputs.jsonl").write_text(replay + json.dumps(broken) + "\n", encoding="utf-8")
    with pytest.raises(jsonschema.ValidationError):
        run_block(block(CHECK))


# --- the consumer -------------------------------------------------------------------------


def tag_change_topic(outputs: list[Output]) -> list[Outgoing]:
    """The records the worker sends to the tag-change topic for these outputs, in order,
    headers and all (the worker's own routing)."""
    settings = Settings()
    batch = Prepared(0, outputs=outputs)
    return [
        r
        for r in routed(batch, Topics.from_settings(settings))
        if r.topic == settings.tag_changes_topic
    ]


def test_the_consumer_keeps_the_audience_the_profiles_hold() -> None:
    """Fed the whole topic twice (a consumer group reset), each tag's audience is the
    people whose profile holds the tag at the end: merges and forgets followed."""
    data = replayed()
    audience: Callable[[Any, str], set[str]] = run_block(block(CONSUMER))["audience"]
    sent = tag_change_topic(data.outputs)
    kinds = {dict(r.headers or [])["tagger-kind"] for r in sent}
    assert kinds == {b"tag_change", b"identity_merge", b"forgotten"}  # all three matter
    holders: dict[str, set[str]] = {}
    for person in data.people:
        for tag in person.tags:
            holders.setdefault(tag, set()).add(person.user_id)
    mentioned = {o["tag"] for o in map(json.loads, (r.value for r in sent)) if "tag" in o}
    assert len(mentioned) > 10
    for tag in sorted(mentioned):
        assert audience(sent + sent, tag) == holders.get(tag, set()), tag


def test_the_consumer_drops_a_record_it_has_seen() -> None:
    """A tag added and later removed: the add sent again after the remove (a redo of an
    older fetch) does not bring the person back."""
    audience = run_block(block(CONSUMER))["audience"]
    sent = tag_change_topic(replayed().outputs)
    records = [(r, json.loads(r.value)) for r in sent]
    removed = {(o["person_id"], o["tag"]) for _, o in records if o.get("op") == "remove"}
    adds = [
        (r, o) for r, o in records if o.get("op") == "add" and (o["person_id"], o["tag"]) in removed
    ]
    record, output = next((r, o) for r, o in adds if o["person_id"] not in audience(sent, o["tag"]))
    assert output["person_id"] not in audience([*sent, record], output["tag"])
    renewed = record.value.replace(output["id"].encode(), b"f" * 24)  # another cause
    fresh = Outgoing(record.topic, record.key, renewed, None, record.headers)
    assert output["person_id"] in audience([*sent, fresh], output["tag"])  # a new id counts


def test_the_consumer_leaves_a_version_it_does_not_know_unread() -> None:
    audience = run_block(block(CONSUMER))["audience"]
    sent = tag_change_topic(replayed().outputs)
    later = [Outgoing(r.topic, r.key, r.value, None, version_2(r.headers)) for r in sent]
    tags = {o["tag"] for o in map(json.loads, (r.value for r in sent)) if o.get("op") == "add"}
    assert any(audience(sent, tag) for tag in tags)
    assert not any(audience(later, tag) for tag in tags)


def version_2(headers: list[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    """The headers of a record of version 2 of its kind."""
    return [(n, b"2" if n == "tagger-schema-version" else v) for n, v in headers or []]


# --- the CloudEvent -----------------------------------------------------------------------

ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")  # CloudEvents 1.0: attribute names
REQUIRED = ("specversion", "id", "source", "type")


def test_the_cloudevent_is_a_cloudevent_and_what_the_table_says() -> None:
    as_cloudevent = run_block(block(CLOUDEVENT))["as_cloudevent"]
    rows = table(OUTPUTS.section("CloudEvents"), "attribute")
    documented = [spans(cells[0])[0] for _, cells in rows]
    records = [orjson.loads(orjson.dumps(output_to_dict(o))) for o in replayed().outputs]
    events = [as_cloudevent(record) for record in records]
    for record, event in zip(records, events, strict=True):
        assert list(event) == documented
        assert all(ATTRIBUTE.match(name) for name in event if name != "data")
        assert all(isinstance(event[name], str) and event[name] for name in REQUIRED)
        assert event["specversion"] == "1.0"
        assert event["type"] == f"realtime_tagger.{record['kind']}.v{record['schema_version']}"
        assert (event["id"], event["subject"], event["data"]) == (
            record["id"],
            record["person_id"],
            record,
        )
        assert datetime.fromisoformat(event["time"]).utcoffset() is not None  # RFC 3339
        assert event["dataschema"] == "urn:realtime-tagger:schema:outputs"
    # CloudEvents: source and id identify an event; distinct outputs are distinct events.
    assert len({(e["source"], e["id"]) for e in events}) == len(events)
    assert as_cloudevent(records[0], app_id="shop-eu")["source"] == "urn:realtime-tagger:shop-eu"
    example = next(spans(c[1]) for _, c in rows if spans(c[0]) == ["type"])
    assert "realtime_tagger.tag_change.v1" in example

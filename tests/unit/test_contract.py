"""The schemas ``tagger schema`` prints, proved on real data with the stock ``jsonschema``
validator: what ``tagger replay`` writes for the bundled pack over ``tagger simulate`` is
valid under ``tagger schema outputs``, every event the decoder accepts is valid under
``tagger schema events`` and every one it refuses as ``schema`` is not. (The worker's
published records, headers and all, are checked in tests/integration/test_contract.py.)
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from streams.cli import main
from streams.cli.lookup import SCHEMAS
from taggers.events import EVENT_TYPES, EventError, decode_event
from taggers.json_schema import DIALECT
from taggers.outputs import OUTPUT_KINDS
from tests.support.contract import REPLAY_LINES, SIMULATE_ARGS, validator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What ``tagger ARGV`` prints, having checked that it succeeded."""
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_names_its_dialect_and_its_id(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    schema = orjson.loads(run(capsys, "schema", name))
    assert list(schema)[:2] == ["$schema", "$id"]
    assert (schema["$schema"], schema["$id"]) == (DIALECT, f"urn:realtime-tagger:schema:{name}")
    Draft202012Validator.check_schema(schema)


def test_the_rules_schema_still_describes_rule_files(capsys: pytest.CaptureFixture[str]) -> None:
    schema = orjson.loads(run(capsys, "schema", "rules"))
    assert {"aggregates", "tags", "lifecycle", "alerts"} <= set(schema["properties"])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tagger simulate`` (bad lines, second ids, forgets, opt-outs) written to a file."""
    path = tmp_path_factory.mktemp("contract") / "events.jsonl"
    out = io.StringIO()  # capsys is the function's: the module's file is made once
    with contextlib.redirect_stdout(out):
        assert main(["simulate", *SIMULATE_ARGS]) == 0
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_replays_outputs_are_valid_under_the_outputs_schema(
    capsys: pytest.CaptureFixture[str], simulated: Path
) -> None:
    schema = orjson.loads(run(capsys, "schema", "outputs"))
    check = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    lines = run(capsys, "replay", str(simulated), "--json").splitlines()
    records = [orjson.loads(line) for line in lines]
    outputs = [r for r in records if r["kind"] not in REPLAY_LINES]
    assert {r["kind"] for r in outputs} == {kind.name for kind in OUTPUT_KINDS}, "a kind unseen"
    problems = [
        f"{r['kind']} {r['id']}: {error.message}" for r in outputs for error in check.iter_errors(r)
    ]
    assert not problems, "\n".join(problems[:10])
    # The same validator refuses a record that breaks the contract.
    first: dict[str, Any] = outputs[0]
    for broken in (
        {k: v for k, v in first.items() if k != "reason"},
        first | {"schema_version": 2},
        first | {"at": 1767225600000},
    ):
        assert not check.is_valid(broken)


def test_simulated_events_are_what_the_events_schema_says(simulated: Path) -> None:
    """Accepted by the decoder: valid. Refused as ``schema``: invalid. (Bounds the schema
    cannot say, as the size of a message or its depth, only the decoder checks.)"""
    check = validator("events")
    verdicts: Counter[tuple[str, bool]] = Counter()
    for line in simulated.read_bytes().splitlines():
        try:
            decode_event(line)
            reason = "accepted"
        except EventError as error:
            reason = error.reason
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # not JSON: no schema can say
        verdicts[reason, check.is_valid(data)] += 1
    assert verdicts["accepted", True] > 1000
    assert verdicts["schema", False] > 10
    assert verdicts["accepted", False] == 0, "an event the worker takes fails the schema"
    assert verdicts["schema", True] == 0, "an event the worker refuses passes the schema"


GOOD_PURCHASE = {"event_id": "e1", "user_id": "u1", "type": "purchase", "ts": 1767225600000}


@pytest.mark.parametrize(
    "props",
    [{"amount": "lots"}, {"amount": -1}, {"amount": True}, {"order_id": "o1"}, None],
    ids=["text", "negative", "boolean", "no-amount", "no-props"],
)
def test_the_events_schema_refuses_a_purchase_with_a_bad_amount(props: Any) -> None:
    check = validator("events")
    event = GOOD_PURCHASE if props is None else GOOD_PURCHASE | {"props": props}
    assert not check.is_valid(event)
    with pytest.raises(EventError):  # as the decoder does
        decode_event(orjson.dumps(event))
    assert check.is_valid(GOOD_PURCHASE | {"props": {"amount": "1500.50", "extra": 1}})
    # An unknown type's props are free, as the decoder takes them.
    assert check.is_valid(GOOD_PURCHASE | {"type": "wishlist", "props": {"amount": "lots"}})


def test_every_known_type_has_its_props_checked_by_standard_keywords() -> None:
    schema = SCHEMAS["events"]()
    assert "x-event-types" not in schema
    by_type = {rule["if"]["properties"]["type"]["const"]: rule["then"] for rule in schema["allOf"]}
    assert list(by_type) == list(EVENT_TYPES)
    for name, (model, meaning) in EVENT_TYPES.items():
        then = by_type[name]
        assert then["description"] == f"{name}: {meaning}"
        if model.model_fields:
            assert then["properties"]["props"] == {"$ref": f"#/$defs/{model.__name__}"}
            assert schema["$defs"][model.__name__]["properties"].keys() == model.model_fields.keys()
        else:
            assert "properties" not in then, name

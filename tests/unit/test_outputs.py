"""The output kinds' registry: every kind is declared, and routed, counted, shown and
written as its declaration says; the JSON subscribers read stays byte for byte.

The completeness tests build an output of each member of ``Output`` from its dataclass
fields, so a kind added to the union is checked without being listed here; a field type
``sample_value`` does not know fails the test, naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import REGISTRY

from streams import metrics
from streams.settings import Settings
from streams.topics import output_topics, topic_names
from streams.worker.routing import Topics, routed
from taggers import outputs, rulefile
from taggers.display import OutputTally, describe_output
from taggers.output_schema import kind_schema, outputs_json_schema
from taggers.outputs import (
    OUTPUT_KINDS,
    TOPIC_KINDS,
    Alert,
    Forgotten,
    IdentityMerge,
    Output,
    Reason,
    TagChange,
    Transition,
    kind_named,
    kind_of,
    output_id,
    output_to_dict,
)

ROOT = Path(__file__).resolve().parents[2]
AT = 1_767_225_600_000  # 2026-01-01T00:00:00.000Z
MEMBERS: tuple[type[Output], ...] = get_args(Output)


def sample_value(name: str, hint: Any) -> Any:
    """A value for a dataclass field of this type (the first choice of a Literal or union)."""
    origin = get_origin(hint)
    if origin is Literal:
        return get_args(hint)[0]
    if origin in (Union, types.UnionType):
        return sample_value(name, next(a for a in get_args(hint) if a is not type(None)))
    if origin is dict:
        return {"n": 1}
    if origin is tuple:
        return (f"{name}-1", f"{name}-2")
    simple: dict[Any, Any] = {
        bool: True,
        str: f"{name}-1",
        int: AT,
        Reason: Reason("a_rule", "v1", {"orders": 2}, "orders >= 1"),
    }
    if hint is SOURCE.Reason:  # a field of the source's class: the compiled class is made
        hint = Reason
    if hint not in simple:
        pytest.fail(f"no sample value for a field {name}: {hint} (extend sample_value)")
    return simple[hint]


def source_module() -> types.ModuleType:
    """taggers.outputs run from its source under another name: the compiled classes keep no
    field types to read (the pure Python classes of the same source do)."""
    path = Path(outputs.__file__).with_name("outputs.py")
    spec = importlib.util.spec_from_file_location("taggers_outputs_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


SOURCE = source_module()


def sample(cls: type[Output], **given: Any) -> Output:
    """An output of this kind, from its fields' types (``kind`` keeps its default), with
    the ``given`` fields' values (those it has)."""
    hints = get_type_hints(getattr(SOURCE, cls.__name__))
    values = {
        f.name: given[f.name] if f.name in given else sample_value(f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
    }
    return cls(**values)


@pytest.fixture(params=MEMBERS, ids=lambda cls: cls.__name__)
def output(request: pytest.FixtureRequest) -> Output:
    cls: type[Output] = request.param
    return sample(cls)


def docs_text() -> str:
    """The README and every page of docs/, where the outputs are documented."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


# Completeness: one declaration per member of Output ------------------------------------


def test_every_member_of_output_has_one_declaration() -> None:
    declared = [kind.cls for kind in OUTPUT_KINDS]
    assert sorted(c.__name__ for c in declared) == sorted(c.__name__ for c in MEMBERS)
    assert len({kind.name for kind in OUTPUT_KINDS}) == len(OUTPUT_KINDS), "two kinds, one name"


def test_an_output_maps_to_its_own_declaration(output: Output) -> None:
    kind = kind_of(output)
    assert kind.cls is type(output)
    assert kind.name == output.kind  # the dataclass's "kind" is its declaration's name
    assert kind_named(kind.name) is kind


def test_serialisation_writes_the_declared_shape(output: Output) -> None:
    kind = kind_of(output)
    data = output_to_dict(output)
    assert tuple(data) == kind.keys
    assert tuple(kind.body(output)) == tuple(kind.fields)
    assert orjson.loads(orjson.dumps(data)) == data  # JSON as it is, nothing lost on the way


def own_topics() -> dict[str, str]:
    """Each kind's topic setting, by kind, for the kinds with a topic of their own."""
    return {k.name: k.topic_setting for k in OUTPUT_KINDS if k.topic_setting is not None}


def test_the_topic_is_a_setting_of_its_own_or_every_topic() -> None:
    fields = Settings.model_fields
    settings = own_topics()
    for kind in OUTPUT_KINDS:
        assert (kind.name in settings) != kind.everywhere, f"{kind.name}: own topic or everywhere"
    for name, setting in settings.items():
        assert setting in fields, f"{name}: no setting {setting}"
        assert fields[setting].annotation is str, setting
    routed = output_topics(Settings())
    assert list(routed) == [kind.name for kind in TOPIC_KINDS] == list(settings)
    assert len(set(routed.values())) == len(routed), f"two kinds share a topic: {routed}"
    assert set(routed.values()) <= set(topic_names(Settings())), "an output topic not created"


def test_the_topic_follows_its_setting() -> None:
    renamed = Settings().model_copy(update={s: f"out-{n}" for n, s in own_topics().items()})
    assert output_topics(renamed) == {name: f"out-{name}" for name in own_topics()}


def test_a_kind_is_declared_with_a_topic_or_everywhere_not_both() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dataclasses.replace(kind_named("forgotten"), topic_setting="alerts_topic")
    with pytest.raises(ValueError, match="exactly one"):
        dataclasses.replace(kind_named("alert"), everywhere=True)


def test_routing_sends_an_output_to_its_topics_keyed_by_person(output: Output) -> None:
    """One record per topic it goes to: its kind's, or every output topic once; the key is
    the person, whichever id the event came under."""
    settings = Settings()
    topics = Topics.from_settings(settings)
    batch = types.SimpleNamespace(dead=[], rekey=[], outputs=[output])
    sent = list(routed(batch, topics))  # type: ignore[arg-type]
    kind = kind_of(output)
    want = (
        list(output_topics(settings).values()) if kind.everywhere else [topics.outputs[kind.name]]
    )
    assert [record.topic for record in sent] == want
    assert {record.key for record in sent} == {output.person_id.encode()} != {b"user_id-1"}
    assert {record.value for record in sent} == {orjson.dumps(output_to_dict(output))}
    # Headers a consumer routes by without parsing the value: the kind and its version.
    for record in sent:
        assert record.headers == [
            ("tagger-kind", kind.name.encode()),
            ("tagger-schema-version", str(kind.version).encode()),
        ]


def test_count_output_counts_by_kind_and_by_what_it_says(output: Output) -> None:
    kind = kind_of(output)
    labels = kind.metric_labels(output)
    assert len(labels) == len(kind.metric.labels)
    assert all(isinstance(value, str) for value in labels)
    by_kind = dict(zip(kind.metric.labels, labels, strict=True))  # {} for a kind with none
    total = ("tagger_outputs_total", {"kind": kind.name})
    named = (kind.metric.name, by_kind)
    before = [REGISTRY.get_sample_value(*series) or 0.0 for series in (total, named)]
    metrics.count_output(output)
    after = [REGISTRY.get_sample_value(*series) or 0.0 for series in (total, named)]
    assert after == [b + 1 for b in before]


def test_every_kind_has_a_counter_of_its_own() -> None:
    assert list(metrics.OUTPUTS_BY_KIND) == [kind.name for kind in OUTPUT_KINDS]
    names = [kind.metric.name for kind in OUTPUT_KINDS]
    assert len(set(names)) == len(names), f"two kinds share a metric: {names}"
    assert all(re.fullmatch(r"tagger_[a-z_]+_total", name) for name in names), names


def test_display_is_one_line_naming_the_id_and_the_person(output: Output) -> None:
    record = orjson.loads(orjson.dumps(output_to_dict(output)))  # as read off the topic
    line = describe_output(record, {})
    assert "\n" not in line
    assert line.startswith(f"{record['at']}  {output.user_id} (person {output.person_id})  ")
    assert line.endswith("  because orders=2")
    alone = record | {"person_id": record["user_id"]}  # an event under the person's own id
    assert describe_output(alone, {}).startswith(f"{record['at']}  {output.user_id}  ")


def test_a_tally_counts_every_kind(output: Output) -> None:
    kind = kind_of(output)
    assert kind.tally is None or kind.tally in kind.fields
    tally = OutputTally()
    assert (kind.plural in OutputTally().line()) == kind.summary_when_none
    tally.add(output_to_dict(output))
    tally.add(output_to_dict(output))
    assert tally.kinds == {kind.name: 2}
    assert f"{kind.plural} 2" in tally.line()
    expected = [] if kind.tally is None else [(str(output_to_dict(output)[kind.tally]), 2)]
    assert tally.by(kind) == expected


def test_the_docs_show_each_kinds_topic_and_json_shape() -> None:
    """Each kind has its row in the topics table: its default topic (or "every output
    topic"), "kind": name, and its keys in the order they are written."""
    text = docs_text()
    for kind in OUTPUT_KINDS:
        if kind.topic_setting is None:
            start = "| every output topic |"
        else:
            start = f"| `{Settings.model_fields[kind.topic_setting].default}` |"
        rows = [
            line
            for line in text.splitlines()
            if line.startswith(start) and f'"kind": "{kind.name}"' in line
        ]
        assert rows, f"{kind.name}: no row {start} with its JSON in README.md or docs/"
        row = rows[0]
        assert f'"kind": "{kind.name}"' in row, row
        quoted = iter(re.findall(r'"([^"]+)"', row))
        # Its keys in order, a subsequence of the row's quoted words (values come between).
        stray = next((key for key in kind.keys if key not in quoted), None)
        assert stray is None, f"{kind.name}: keys {kind.keys}; the row breaks at {stray!r}: {row}"


def test_the_docs_list_each_kinds_metrics() -> None:
    text = docs_text()
    rows = [line for line in text.splitlines() if line.startswith("| `tagger_outputs_total{kind}`")]
    assert rows, "no row for tagger_outputs_total{kind}"
    for kind in OUTPUT_KINDS:
        assert f"`{kind.name}`" in rows[0], f"{kind.name}: not in {rows[0]}"
        labels = f"{{{','.join(kind.metric.labels)}}}" if kind.metric.labels else ""
        series = f"`{kind.metric.name}{labels}`"
        assert series in text, f"{kind.name}: its metric {series} is not documented"


def test_an_unknown_kind_is_an_error_not_a_fall_through() -> None:
    with pytest.raises(ValueError, match=r"unknown output kind 'merge' \(known: tag_change"):
        kind_named("merge")
    record = output_to_dict(sample(Alert)) | {"kind": "merge"}
    with pytest.raises(ValueError, match="unknown output kind"):
        describe_output(record, {})
    with pytest.raises(ValueError, match="unknown output kind"):
        OutputTally().add(record)


# The schema of each kind (tagger schema outputs) ---------------------------------------

SCHEMA = outputs_json_schema()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def as_written(cls: type[Output]) -> dict[str, Any]:
    """The JSON of an output of this kind as the engine makes one: a real output id, a
    severity a rule file can name, read back as a subscriber reads it."""
    made = sample(cls, id=output_id("u1", "e1", "v1", "tag", "vip"), severity="high")
    data: dict[str, Any] = orjson.loads(orjson.dumps(output_to_dict(made)))
    return data


def test_every_kind_has_a_schema_of_the_keys_it_writes(output: Output) -> None:
    """The $defs entry of each member of Output (found from the union, not a list here):
    exactly its keys, in order, all required, no other; the record it writes is valid."""
    kind = kind_of(output)
    assert kind.name in SCHEMA["$defs"], f"{kind.name}: no schema in tagger schema outputs"
    schema = SCHEMA["$defs"][kind.name]
    assert list(schema["properties"]) == list(kind.keys) == schema["required"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["schema_version"] == {"const": kind.version}
    record = as_written(type(output))
    assert record["schema_version"] == kind.version
    errors = [error.message for error in VALIDATOR.iter_errors(record)]
    assert not errors, f"{kind.name}: {errors}"


def test_the_schema_is_a_draft_2020_12_document_that_picks_the_kind() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert (SCHEMA["$schema"], SCHEMA["$id"]) == (
        "https://json-schema.org/draft/2020-12/schema",
        "urn:realtime-tagger:schema:outputs",
    )
    names = [kind.name for kind in OUTPUT_KINDS]
    assert list(SCHEMA["$defs"]) == names == SCHEMA["properties"]["kind"]["enum"]
    assert [rule["then"]["$ref"] for rule in SCHEMA["allOf"]] == [f"#/$defs/{n}" for n in names]


@pytest.mark.parametrize(
    "breaking",
    [
        lambda r: {k: v for k, v in r.items() if k != "id"},  # a key missing
        lambda r: r | {"extra": 1},  # a key it does not write
        lambda r: r | {"schema_version": r["schema_version"] + 1},  # another version
        lambda r: r | {"id": "not-an-output-id"},
        lambda r: r | {"at": "2026-01-01T08:00:00+08:00"},  # not UTC with milliseconds
        lambda r: r | {"reason": {"rule": "r"}},  # no version, no values
        lambda r: r | {"person_id": "{u1}"},  # not an id
        lambda r: r | {"kind": "merge"},  # no such kind
    ],
    ids=["missing", "extra", "version", "id", "at", "reason", "person", "kind"],
)
def test_the_schema_refuses_a_broken_record(output: Output, breaking: Any) -> None:
    record = as_written(type(output))
    assert VALIDATOR.is_valid(record)
    assert not VALIDATOR.is_valid(breaking(record))


def test_the_schema_refuses_a_wrong_value_of_a_kinds_own_key() -> None:
    wrong: dict[str, dict[str, Any]] = {
        "tag_change": {"op": "toggle"},
        "transition": {"to": None},
        "alert": {"severity": "warning"},
        "identity_merge": {"ids": []},
        "forgotten": {"ids": ["u1", 7]},
    }
    assert set(wrong) == {kind.name for kind in OUTPUT_KINDS}, "a wrong value for each kind"
    for kind in OUTPUT_KINDS:
        record = as_written(kind.cls)
        assert VALIDATOR.is_valid(record)
        assert not VALIDATOR.is_valid(record | wrong[kind.name]), kind.name


def test_the_alert_severities_are_a_rule_files() -> None:
    assert get_args(rulefile.Severity) == outputs.SEVERITIES


# Each version of each kind, with the digest of its schema (descriptions left out). What a
# kind writes changed (the test below fails): bump its version in taggers/outputs.py and
# add the new digest under the new version, keeping the old ones.
SCHEMA_DIGESTS: dict[str, dict[int, str]] = {
    "tag_change": {1: "db52ba193547deb8"},
    "transition": {1: "e20d13784102b4de"},
    "alert": {1: "6e35fa719a3d2be3"},
    "identity_merge": {1: "fcc3ad5e990f2e35"},
    "forgotten": {1: "b5e28d496c232040"},
}


def schema_digest(schema: Any) -> str:
    """A digest of a schema's constraints: its descriptions and title do not count."""

    def constraints(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: constraints(v) for k, v in node.items() if k not in ("description", "title")}
        if isinstance(node, list):
            return [constraints(item) for item in node]
        return node

    data = orjson.dumps(constraints(schema), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@pytest.mark.parametrize("kind", OUTPUT_KINDS, ids=lambda kind: kind.name)
def test_a_change_to_what_a_kind_writes_bumps_its_version(kind: Any) -> None:
    versions = SCHEMA_DIGESTS.get(kind.name, {})
    assert kind.version == max(versions, default=0), f"{kind.name}: its versions {versions}"
    digest = schema_digest(kind_schema(kind))
    assert versions[kind.version] == digest, (
        f"{kind.name} writes something else now ({digest}): bump its version to"
        f" {kind.version + 1} and pin {{{kind.version + 1}: {digest!r}}} in SCHEMA_DIGESTS"
    )


# The JSON and lines subscribers and people read, byte for byte -------------------------

REASON = Reason(
    "high_value",
    "a41c09e2b7d3",
    {"spend_90d": 1100.5, "high_value_spend": 1000},
    "spend_90d >= high_value_spend",
)
EMPTY = Reason("lifecycle", "v2", {})
MERGE = Reason("identify", "v2", {}, "identify")
FORGET = Reason("forget", "v2", {}, "forget")
GOLDEN: list[tuple[Output, str, str]] = [
    (
        TagChange("id-t", "u1", "u1", "high_value", "add", "高价值客户", AT, REASON, False),
        '{"kind":"tag_change","schema_version":1,'
        '"id":"id-t","user_id":"u1","person_id":"u1","tag":"high_value",'
        '"op":"add","display":"高价值客户","opted_out":false,"at":"2026-01-01T00:00:00.000Z",'
        '"reason":{"rule":"high_value","version":"a41c09e2b7d3","values":{"spend_90d":1100.5,'
        '"high_value_spend":1000},"note":"spend_90d >= high_value_spend"}}',
        "2026-01-01T00:00:00.000Z  u1  tag +high_value (高价值客户)"
        "  because spend_90d=1100.5, high_value_spend=1000",
    ),
    (
        TagChange("id-r", "wecom:wm1", "u1", "interest_美妆", "remove", None, AT + 1, EMPTY, True),
        '{"kind":"tag_change","schema_version":1,'
        '"id":"id-r","user_id":"wecom:wm1","person_id":"u1",'
        '"tag":"interest_美妆","op":"remove","display":null,"opted_out":true,'
        '"at":"2026-01-01T00:00:00.001Z","reason":{"rule":"lifecycle","version":"v2","values":{}}}',
        "2026-01-01T00:00:00.001Z  wecom:wm1 (person u1)  tag -interest_美妆 (opted out)",
    ),
    (
        Transition("id-n", "u2", "u2", None, "prospect", AT, EMPTY, False),
        '{"kind":"transition","schema_version":1,'
        '"id":"id-n","user_id":"u2","person_id":"u2","from":null,'
        '"to":"prospect","opted_out":false,"at":"2026-01-01T00:00:00.000Z",'
        '"reason":{"rule":"lifecycle","version":"v2","values":{}}}',
        "2026-01-01T00:00:00.000Z  u2  stage - -> prospect",
    ),
    (
        Transition(
            "id-m",
            "u2",
            "u2",
            "new",
            "dormant",
            AT,
            Reason("lifecycle", "v2", {"n": 5}, "idle 60d"),
            True,
        ),
        '{"kind":"transition","schema_version":1,'
        '"id":"id-m","user_id":"u2","person_id":"u2","from":"new",'
        '"to":"dormant","opted_out":true,"at":"2026-01-01T00:00:00.000Z",'
        '"reason":{"rule":"lifecycle","version":"v2","values":{"n":5},"note":"idle 60d"}}',
        "2026-01-01T00:00:00.000Z  u2  stage new -> dormant (opted out)  because n=5",
    ),
    (
        Alert("id-a", "u3", "u3", "koc", "info", "KOC候选", AT, {"orders": 7}, EMPTY),
        '{"kind":"alert","schema_version":1,'
        '"id":"id-a","user_id":"u3","person_id":"u3","name":"koc",'
        '"severity":"info","display":"KOC候选","details":{"orders":7},'
        '"at":"2026-01-01T00:00:00.000Z","reason":{"rule":"lifecycle","version":"v2","values":{}}}',
        "2026-01-01T00:00:00.000Z  u3  ALERT koc (KOC候选) [info]  with orders=7",
    ),
    (
        Alert("id-b", "member:8812", "u3", "churn_risk", "warning", None, AT, {}, EMPTY),
        '{"kind":"alert","schema_version":1,'
        '"id":"id-b","user_id":"member:8812","person_id":"u3",'
        '"name":"churn_risk","severity":"warning","display":null,"details":{},'
        '"at":"2026-01-01T00:00:00.000Z","reason":{"rule":"lifecycle","version":"v2","values":{}}}',
        "2026-01-01T00:00:00.000Z  member:8812 (person u3)  ALERT churn_risk [warning]",
    ),
    (
        IdentityMerge("id-i", "u4", "u4", "wecom:wm2", ("u4", "wecom:wm2", "member:9"), AT, MERGE),
        '{"kind":"identity_merge","schema_version":1,'
        '"id":"id-i","user_id":"u4","person_id":"u4",'
        '"absorbed":"wecom:wm2","survivor":"u4","ids":["u4","wecom:wm2","member:9"],'
        '"at":"2026-01-01T00:00:00.000Z","reason":{"rule":"identify","version":"v2",'
        '"values":{},"note":"identify"}}',
        "2026-01-01T00:00:00.000Z  u4  MERGE wecom:wm2 into u4 (3 ids)",
    ),
    (
        Forgotten("id-f", "wecom:wm2", "u4", ("u4", "wecom:wm2"), AT, FORGET),
        '{"kind":"forgotten","schema_version":1,'
        '"id":"id-f","user_id":"wecom:wm2","person_id":"u4",'
        '"ids":["u4","wecom:wm2"],"at":"2026-01-01T00:00:00.000Z",'
        '"reason":{"rule":"forget","version":"v2","values":{},"note":"forget"}}',
        "2026-01-01T00:00:00.000Z  wecom:wm2 (person u4)  FORGOTTEN (2 ids deleted)",
    ),
]


@pytest.mark.parametrize(("given", "json", "line"), GOLDEN, ids=[g[0].id for g in GOLDEN])
def test_json_and_line_are_exactly_these(given: Output, json: str, line: str) -> None:
    data = orjson.dumps(output_to_dict(given))
    assert data == json.encode()
    assert describe_output(orjson.loads(data), {}) == line


def test_the_golden_outputs_cover_every_kind() -> None:
    assert {kind_of(g[0]).name for g in GOLDEN} == {kind.name for kind in OUTPUT_KINDS}


def test_the_summary_line_counts_each_kind() -> None:
    tally = OutputTally()
    for given, _, _ in GOLDEN:
        tally.add(output_to_dict(given))
    assert tally.line() == (
        "tag changes 2  transitions 2  alerts 2 (churn_risk=1, koc=1)  identity merges 1"
        "  forgotten 1"
    )
    assert OutputTally().line() == "tag changes 0  transitions 0  alerts 0 (-)"

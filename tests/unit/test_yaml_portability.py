"""Rule files mean the same in every YAML tool: YAML 1.1 ones (PyYAML, yamllint, editors'
schema validators) read the bundled pack as the engine does, and it passes the JSON
Schema of ``tagger schema rules`` there; values that 1.1 and 1.2 read apart are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from taggers.bundled import BUNDLED_RULES
from taggers.rulefile import RuleFile
from taggers.ruleset import load_rules
from taggers.yaml_source import RuleSetError, load_yaml
from taggers.yaml_versions import ambiguity

RULE_FILES = sorted(Path(BUNDLED_RULES).glob("*.yaml"))
TEST_FILES = sorted((Path(BUNDLED_RULES) / "tests").glob("*.yaml"))


def test_the_pack_has_files_to_check() -> None:
    assert {p.name for p in RULE_FILES} >= {"alerts.yaml", "lifecycle.yaml", "tags.yaml"}
    assert TEST_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_a_yaml_11_tool_reads_each_rule_file_as_the_engine_does(path: Path) -> None:
    old = yaml.safe_load(path.read_text(encoding="utf-8"))  # PyYAML: YAML 1.1
    ours, _ = load_yaml(path)
    assert old == ours
    assert True not in _keys(old)  # no key read as a boolean (the old `on:`)


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_each_rule_file_read_as_yaml_11_passes_the_rules_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(RuleFile.model_json_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_a_yaml_11_tool_reads_each_rule_test_file_as_the_runner_does(path: Path) -> None:
    old = yaml.safe_load(path.read_text(encoding="utf-8"))
    ours, _ = load_yaml(path)
    assert old == ours


def test_the_schema_check_fails_on_the_old_on_key_as_yaml_11_reads_it() -> None:
    """What made the pack fail in YAML 1.1 tools: the key ``on:`` is the boolean true."""
    data = yaml.safe_load("alerts:\n  a: {on: message}\n")
    assert data == {"alerts": {"a": {True: "message"}}}
    validator = jsonschema.Draft202012Validator(RuleFile.model_json_schema())
    text = yaml.safe_dump({"alerts": {"a": {"upon": "message"}}})
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    assert list(validator.iter_errors({"alerts": {"a": {"on": "message"}}}))


def _keys(value: Any) -> set[Any]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as raised:
        load_rules(tmp_path)
    return [str(p).removeprefix(str(tmp_path) + "/") for p in raised.value.problems]


BASE = "aggregates:\n  orders: {count: purchase}\n"


def test_the_old_on_key_is_refused_where_it_is_with_the_new_name(tmp_path: Path) -> None:
    found = _problems(tmp_path, BASE + "alerts:\n  a:\n    on: message\n")
    assert found == [
        "rules.yaml:5:5: the key 'on': YAML 1.1 tools read 'on' as true, YAML 1.2 ones as the"
        " text 'on' (hint: the event that triggers an alert or a transition is written upon:"
        " (upon: purchase))"
    ]


def test_a_quoted_old_on_key_is_named_by_its_new_name(tmp_path: Path) -> None:
    (found,) = _problems(tmp_path, BASE + 'alerts:\n  a:\n    "on": message\n')
    assert found.startswith("rules.yaml:5:5: unknown key 'on' (hint: 'on' is now 'upon'")


@pytest.mark.parametrize(
    ("value", "reading"),
    [
        ("yes", "YAML 1.1 tools read 'yes' as true, YAML 1.2 ones as the text 'yes'"),
        ("off", "YAML 1.1 tools read 'off' as false, YAML 1.2 ones as the text 'off'"),
        ("n", "YAML 1.1 tools read 'n' as false, YAML 1.2 ones as the text 'n'"),
        ("1:30", "YAML 1.1 tools read '1:30' as an integer, YAML 1.2 ones as a text"),
        ("012", "YAML 1.1 tools read '012' as 10, YAML 1.2 ones as 12"),
        ("1_000", "YAML 1.1 tools read '1_000' as an integer, YAML 1.2 ones as a text"),
        ("1e3", "YAML 1.1 tools read '1e3' as a text, YAML 1.2 ones as a number"),
        ("0o17", "YAML 1.1 tools read '0o17' as a text, YAML 1.2 ones as an integer"),
    ],
)
def test_a_value_yaml_versions_read_apart_is_a_problem_where_it_is(
    tmp_path: Path, value: str, reading: str
) -> None:
    assert ambiguity(value) == reading
    (found,) = _problems(tmp_path, BASE + f"params:\n  x: {value}\n")
    assert found.startswith(f"rules.yaml:4:6: the value {value!r} is ambiguous: {reading}")
    assert "(hint: " in found and f"quote it ('{value}')" in found


@pytest.mark.parametrize(
    "value", ["true", "false", "7", "0", "-3", "1.5", "90d", "+3d", "09:00", "'yes'", '"1:30"']
)
def test_values_every_yaml_version_reads_alike_are_taken(tmp_path: Path, value: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BASE + f"params:\n  x: {value}\n", encoding="utf-8")
    data, _ = load_yaml(path)
    assert data["params"]["x"] == yaml.safe_load(value)
    load_rules(tmp_path)  # and the rules take it

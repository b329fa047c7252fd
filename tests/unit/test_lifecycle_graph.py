"""``tagger rules graph``: the lifecycle as Mermaid and SVG, every stage a node and every
transition an arrow labelled with its condition, read back from what is drawn."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import main
from taggers.bundled import BUNDLED_RULES
from taggers.lifecycle_graph import mermaid, svg, text_width
from taggers.ruleset import RuleSet, load_rules

PACK = load_rules(BUNDLED_RULES)
SVG = "{http://www.w3.org/2000/svg}"
STATE = re.compile(r'^    state "(?P<shown>[^"]*)" as (?P<id>[a-z][a-z0-9_]*)$')
EDGE = re.compile(r"^    (?P<a>[a-z][a-z0-9_]*) --> (?P<b>[a-z][a-z0-9_]*): (?P<label>.+)$")
# What Mermaid reads as syntax in a label (statement ends, quotes, blocks): only as codes.
RAW = re.compile(r'[;"{}]')


def _unescaped(text: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)


def _written(directory: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """The lifecycle as its rule file writes it: the initial stage, and per transition and
    source stage (source, target, condition as the picture should say it)."""
    lifecycle: dict[str, Any] = {}
    for path in sorted(directory.glob("*.yaml")):
        lifecycle = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
            "lifecycle", lifecycle
        )
    expected = []
    for step in lifecycle["transitions"]:
        sources = [step["from"]] if isinstance(step["from"], str) else step["from"]
        parts = []
        if "upon" in step:
            parts.append(f"upon {step['upon']}")
        if "after" in step:
            parts.append(f"after {step['after']} since {step['since']}")
        if "when" in step:
            parts.append(step["when"])
        if "alert" in step:
            parts.append(f"raises {step['alert']}")
        stages = list(lifecycle["stages"])
        for source in sorted(sources, key=stages.index):
            expected.append((source, step["to"], " · ".join(parts)))
    return lifecycle["initial"], expected


def _parsed_mermaid(text: str) -> tuple[str, dict[str, str], list[tuple[str, str, str]]]:
    lines = text.splitlines()
    assert lines[:2] == ["```mermaid", "stateDiagram-v2"] and lines[-1] == "```"
    (start,) = [line for line in lines if line.startswith("    [*] --> ")]
    nodes, arrows = {}, []
    for line in lines[2:-1]:
        if line == start:
            continue
        state, edge = STATE.match(line), EDGE.match(line)
        assert state or edge, f"not a node or an edge: {line!r}"
        if state:
            nodes[state["id"]] = _unescaped(state["shown"])
        elif edge:
            assert not RAW.search(re.sub(r"#\d+;", "", edge["label"])), line
            arrows.append((edge["a"], edge["b"], _unescaped(edge["label"])))
    return start.removeprefix("    [*] --> "), nodes, arrows


def test_the_mermaid_picture_has_every_stage_and_every_transition_with_its_condition() -> None:
    initial, nodes, arrows = _parsed_mermaid(mermaid(PACK))
    written_initial, written = _written(Path(BUNDLED_RULES))
    assert initial == written_initial == "prospect"
    assert PACK.lifecycle is not None
    assert nodes == {
        stage: f"{stage} · {display}" for stage, display in PACK.lifecycle.stages.items()
    }
    assert arrows == written
    assert ("dormant", "active", "upon purchase · raises win_back") in arrows


def _rules(directory: Path, lifecycle: str) -> RuleSet:
    (directory / "rules.yaml").write_text(
        "aggregates:\n  orders: {count: purchase}\nalerts:\n  back: {}\nlifecycle:\n" + lifecycle,
        encoding="utf-8",
    )
    return load_rules(directory)


AWKWARD = (
    '  initial: a\n  stages: {a: "A \\"quoted\\"", b: null}\n  transitions:\n'
    '    - {from: a, to: b, when: "orders >= 1 && event.props.text == \'x;y#{z}: \\"w\\"\'",'
    " upon: [message, purchase]}\n"
    "    - {from: b, to: a, since: [view], after: 1d, alert: back}\n"
    "    - {from: b, to: b, upon: view}\n"
)


def test_awkward_conditions_and_names_survive_the_mermaid_text(tmp_path: Path) -> None:
    rules = _rules(tmp_path, AWKWARD)
    initial, nodes, arrows = _parsed_mermaid(mermaid(rules))
    assert initial == "a"
    assert nodes == {"a": 'a · A "quoted"', "b": "b"}
    assert arrows == [
        (
            "a",
            "b",
            "upon message, purchase · orders >= 1 && event.props.text == 'x;y#{z}: \"w\"'",
        ),
        ("b", "a", "after 1d since view · raises back"),
        ("b", "b", "upon view"),
    ]


def _svg_parts(text: str) -> tuple[ET.Element, dict[str, list[str]], list[tuple[str, str, str]]]:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    stages = {
        g.attrib["id"].removeprefix("stage-"): [t.text or "" for t in g.iter(f"{SVG}text")]
        for g in root.iter(f"{SVG}g")
        if g.attrib.get("class") == "stage"
    }
    arrows = [
        (g.attrib["data-from"], g.attrib["data-to"], g.find(f"{SVG}text").text or "")  # type: ignore[union-attr]
        for g in root.iter(f"{SVG}g")
        if g.attrib.get("class") == "transition"
    ]
    return root, stages, arrows


def test_the_svg_is_well_formed_with_a_box_per_stage_and_a_labelled_arrow_per_step() -> None:
    root, stages, arrows = _svg_parts(svg(PACK))
    assert PACK.lifecycle is not None
    assert stages == {stage: [stage, display] for stage, display in PACK.lifecycle.stages.items()}
    assert arrows == _written(Path(BUNDLED_RULES))[1]
    for g in root.iter(f"{SVG}g"):
        if g.attrib.get("class") == "transition":
            assert g.find(f"{SVG}path") is not None


def test_no_two_labels_of_the_svg_overlap() -> None:
    root, _, _ = _svg_parts(svg(PACK))
    boxes = []
    for text in root.iter(f"{SVG}text"):
        if text.attrib.get("class") != "condition":
            continue
        x, y, width = float(text.attrib["x"]), float(text.attrib["y"]), text_width(text.text or "")
        left = x - width if text.attrib["text-anchor"] == "end" else x
        boxes.append((left, y - 13, left + width, y + 4))
        assert left >= 0 and left + width <= float(root.attrib["width"])
    assert len(boxes) == len(_written(Path(BUNDLED_RULES))[1])
    for i, (l1, t1, r1, b1) in enumerate(boxes):
        for l2, t2, r2, b2 in boxes[i + 1 :]:
            assert not (l1 < r2 and l2 < r1 and t1 < b2 and t2 < b1)


def test_the_svg_escapes_what_xml_would_misread(tmp_path: Path) -> None:
    _, stages, arrows = _svg_parts(svg(_rules(tmp_path, AWKWARD)))
    assert stages == {"a": ["a", 'A "quoted"'], "b": ["b"]}
    assert arrows[0][2].endswith("== 'x;y#{z}: \"w\"'")


def test_the_command_prints_the_picture(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "graph", "--rules", str(BUNDLED_RULES)]) == 0
    assert capsys.readouterr().out == mermaid(PACK)
    assert main(["rules", "graph", "--rules", str(BUNDLED_RULES), "--format", "svg"]) == 0
    assert capsys.readouterr().out == svg(PACK)


def test_the_command_says_when_there_is_no_lifecycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text("aggregates:\n  views: {count: view}\n", encoding="utf-8")
    assert main(["rules", "graph", "--rules", str(tmp_path)]) == 1
    assert "has no lifecycle" in capsys.readouterr().err

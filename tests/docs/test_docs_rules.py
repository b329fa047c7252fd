"""Every example in docs/rules.md (the rule authors' guide) is checked here.

- ```yaml blocks: a block with a top-level ``tests:`` key is a rule-test file and must
  pass against the nearest rule-file block before it; any other block is a rule file and
  must compile on its own (written as ``rules.yaml`` next to a copy of the default pack's
  word lists). A block whose first line is ``# From rules/<file>.yaml ...`` is an excerpt
  of the default pack: each of its lines must be a line of one of the files it names.
- ```sh blocks: every ``tagger`` command (each command of a pipeline, without
  redirections and comments) must be accepted by the command-line parser.
- ```json blocks: valid JSON (the VS Code settings).
- Inline examples: aggregate specs in the Aggregates table, alert triggers in the Alerts
  table, ``key: "expression"`` spans, expressions in the Expressions section (compiled
  against the default pack's names) and the default-pack example expressions (which must
  also appear in the file they are said to come from).
- The default pack's tables list exactly the tags, stages and alerts of ``rules/``, in
  file order, with their display names; the schema covers the sections the guide lists.

Test ids name the line of docs/rules.md where the example starts.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import build_parser, main
from taggers.bundled import BUNDLED_RULES
from taggers.expr import FUNCTIONS, MACROS, METHODS, ExprError, Type, compile_expression
from taggers.ruleset import EVENT_TYPE, RuleSet, load_rules, rule_files
from taggers.ruletests import run_tests
from taggers.yaml_source import RuleSetError
from tests.support import ROOT
from tests.support.cli import older_rules_spelling
from tests.support.core import edited_rules
from tests.support.markdown import Block, Page, shell_lines, spans, table, tagger_commands
from tests.unit.test_cel_conformance import DOCUMENTED_ONLY, REASONS

DOC = Page(ROOT / "docs" / "rules.md")
KNOWN_LANGUAGES = frozenset({"yaml", "sh", "json", "text", "mermaid"})  # mermaid: test_docs_graph
COUNTEREXAMPLES = frozenset({"purchase_gap > 30"})
"""Expressions the guide shows as mistakes: they must be rejected."""
BLOCKS = DOC.blocks


def _is_test_file(block: Block) -> bool:
    data = yaml.safe_load(block.text)
    return isinstance(data, dict) and "tests" in data


YAML_BLOCKS = [b for b in BLOCKS if b.lang == "yaml"]
RULE_BLOCKS = [b for b in YAML_BLOCKS if not _is_test_file(b)]


def _test_blocks() -> list[tuple[Block, Block]]:
    """Each rule-test block with the rule file it tests: the nearest rule block before it."""
    pairs: list[tuple[Block, Block]] = []
    rules_block: Block | None = None
    for block in YAML_BLOCKS:
        if not _is_test_file(block):
            rules_block = block
            continue
        assert rules_block is not None, f"{block.id}: a tests: block needs a rule file before it"
        pairs.append((block, rules_block))
    return pairs


TEST_BLOCKS = _test_blocks()
# --- helpers ------------------------------------------------------------------------------


def _write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "rules.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(BUNDLED_RULES / "lists", directory / "lists")
    return directory


def _load(directory: Path, where: str) -> RuleSet:
    try:
        return load_rules(directory)
    except RuleSetError as error:
        problems = "\n".join(str(p) for p in error.problems)
        pytest.fail(f"{where}: the rule file does not compile:\n{problems}")


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return load_rules(BUNDLED_RULES)


def _compile(text: str, rules: RuleSet) -> None:
    names: dict[str, Type] = {**rules.types, "event": EVENT_TYPE}
    constants: dict[str, Any] = {"lists": dict(rules.lists), **rules.params}
    compile_expression(text, names, constants=constants)


# --- fenced blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_has_a_checked_language(block: Block) -> None:
    assert block.lang in KNOWN_LANGUAGES, (
        f"{block.id}: a ``` block needs one of {sorted(KNOWN_LANGUAGES)} so that it is checked"
    )


@pytest.mark.parametrize("block", RULE_BLOCKS, ids=[b.id for b in RULE_BLOCKS])
def test_rule_file_compiles(block: Block, tmp_path: Path) -> None:
    _load(_write_rules(tmp_path / "rules", block.text), block.id)


@pytest.mark.parametrize(("block", "rules_block"), TEST_BLOCKS, ids=[t.id for t, _ in TEST_BLOCKS])
def test_rule_tests_pass(block: Block, rules_block: Block, tmp_path: Path) -> None:
    rules = _load(_write_rules(tmp_path / "rules", rules_block.text), rules_block.id)
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    (tests_dir / "tests.yaml").write_text(block.text, encoding="utf-8")
    results = run_tests(rules, tests_dir)
    assert results, f"{block.id}: no tests"
    failed = [f"{r.name}:\n  " + "\n  ".join(r.failures) for r in results if not r.passed]
    assert not failed, f"{block.id} (rules at {rules_block.id}):\n" + "\n".join(failed)


def _normalised(line: str) -> str:
    return " ".join(re.sub(r"\s+#.*$", "", line).split())


EXCERPTS = [b for b in RULE_BLOCKS if b.text.startswith("# From ")]


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.id for b in EXCERPTS])
def test_excerpt_matches_the_default_pack(block: Block) -> None:
    header, *lines = block.text.splitlines()
    files = re.findall(r"rules/([\w/]+\.yaml)", header)
    assert files, f"{block.id}: name the files, e.g. # From rules/tags.yaml"
    known = {
        _normalised(line)
        for name in files
        for line in (BUNDLED_RULES / name).read_text(encoding="utf-8").splitlines()
    }
    missing = [line for line in lines if _normalised(line) and _normalised(line) not in known]
    assert not missing, f"{block.id}: not in {', '.join(files)}:\n" + "\n".join(missing)


SH_LINES = shell_lines(DOC)


@pytest.mark.parametrize(("number", "line"), SH_LINES, ids=[f"rules.md:{n}" for n, _ in SH_LINES])
def test_shell_line_is_a_valid_tagger_command(number: int, line: str) -> None:
    commands = tagger_commands(line)
    assert commands, f"rules.md:{number}: only tagger commands are checked: {line!r}"
    for command in commands:
        try:
            parsed = build_parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"rules.md:{number}: tagger rejects {shlex.join(command)!r}")
        assert not older_rules_spelling(parsed), (
            f"rules.md:{number}: {shlex.join(command)!r}: name the rule directory with --rules"
        )


JSON_BLOCKS = [b for b in BLOCKS if b.lang == "json"]


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[b.id for b in JSON_BLOCKS])
def test_vscode_settings(block: Block) -> None:
    settings = json.loads(block.text)
    schemas = settings["yaml.schemas"]
    globs = [g for patterns in schemas.values() for g in patterns]
    matched = sorted({p for g in globs for p in BUNDLED_RULES.parent.glob(g)})
    assert matched == rule_files(BUNDLED_RULES), f"{block.id}: the globs miss rule files"


# --- inline examples ----------------------------------------------------------------------


def test_aggregate_kinds_table(tmp_path: Path) -> None:
    rows = table(DOC.section("Aggregates"), "kind")
    specs = [(n, s) for n, cells in rows for s in spans(cells[1]) if s.startswith("{")]
    assert len(specs) >= len(rows)
    for index, (number, span) in enumerate(specs):
        text = f"aggregates:\n  example: {span}\n"
        _load(_write_rules(tmp_path / str(index), text), f"rules.md:{number}: {span}")


def test_alert_triggers_table(tmp_path: Path) -> None:
    rows = table(DOC.section("Alerts"), "trigger")
    triggers = [(n, s) for n, cells in rows for s in spans(cells[1]) if ": " in s]
    assert len(triggers) >= 4
    for index, (number, span) in enumerate(triggers):
        directory = tmp_path / str(index)
        shutil.copytree(BUNDLED_RULES, directory, ignore=shutil.ignore_patterns("tests"))
        text = f"alerts:\n  doc_example: {{{span}}}\n"
        (directory / "doc_example.yaml").write_text(text, encoding="utf-8")
        _load(directory, f"rules.md:{number}: {span}")


KEYED = re.compile(r'^(?:when|exit_when|value|after): "(.+)"$')
PLACEHOLDER = re.compile(r"<[a-z_]+>|\.\*")
IDENTIFIER = re.compile(r"(?<![\w.\\])[A-Za-z_]\w*")
STRING = re.compile(r"'[^']*'|\"[^\"]*\"")


def _expression_spans(pack: RuleSet) -> list[tuple[int, str]]:
    """Expressions shown inline: ``when: "..."`` anywhere, and in the Expressions section
    (outside the default-pack examples table) every span reading a name of the pack."""
    found = [
        (number, match.group(1))
        for number, line in DOC.prose()
        for span in spans(line)
        if (match := KEYED.match(span))
    ]
    names = {*pack.types, "event"}
    section = DOC.section("Expressions")
    examples = {n for n, _ in table(section, "expression")}
    for number, line in section:
        if number in examples:
            continue
        for span in spans(line):
            words = set(IDENTIFIER.findall(STRING.sub("", span)))
            if words & names and not PLACEHOLDER.search(span) and not KEYED.match(span):
                found.append((number, span))
    return found


def test_inline_expressions_compile(pack: RuleSet) -> None:
    shown = _expression_spans(pack)
    assert len(shown) >= 10
    problems: list[str] = []
    for number, text in shown:
        try:
            _compile(text, pack)
        except ExprError as error:
            if text not in COUNTEREXAMPLES:
                problems.append(f"rules.md:{number}: {text!r}: {error}")
        else:
            if text in COUNTEREXAMPLES:
                problems.append(f"rules.md:{number}: {text!r} is shown as a mistake but compiles")
    assert not problems, "\n".join(problems)


def test_default_pack_examples_come_from_the_pack(pack: RuleSet) -> None:
    rows = table(DOC.section("Expressions"), "expression")
    assert rows
    for number, cells in rows:
        (expression,) = spans(cells[0])
        file_name = spans(cells[1])[0]
        source = (BUNDLED_RULES / file_name).read_text(encoding="utf-8")
        assert expression in source, f"rules.md:{number}: {expression!r} is not in {file_name}"
        _compile(expression, pack)


def test_functions_table_lists_every_function() -> None:
    rows = table(DOC.section("Expressions"), "function")
    documented = {
        name
        for _, cells in rows
        for span in spans(cells[0])
        for name in re.findall(r"(\w+)\(", span)
    }
    assert documented == {*FUNCTIONS, *METHODS}


def test_macros_table_lists_every_macro() -> None:
    rows = table(DOC.section("Expressions"), "macro")
    documented = [re.findall(r"\.(\w+)\(", spans(cells[0])[0])[0] for _, cells in rows]
    assert documented == sorted(MACROS, key=("exists", "all", "exists_one", "filter", "map").index)


def test_differences_from_cel_are_the_conformance_tests_reasons() -> None:
    """Each row of the table is a reason the CEL conformance test gives for a known
    difference, or one of the few it cannot show; and each reason has its row."""
    rows = table(DOC.section("Expressions"), "example")
    examples = [spans(cells[0])[0] for _, cells in rows]
    assert sorted(examples) == sorted({*REASONS, *DOCUMENTED_ONLY})


def test_check_error_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = [s for _, line in DOC.prose() for s in spans(line) if s.startswith("error: ")]
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "tags.yaml").write_text(
        'aggregates:\n  orders: {count: purchase}\ntags:\n  vip: {when: "oders >= 5"}\n',
        encoding="utf-8",
    )
    assert main(["rules", "check", str(directory)]) == 1
    expected = example.replace("error: rules/", f"error: {directory}/", 1)
    assert expected in capsys.readouterr().err.splitlines()


# --- the default pack tables and the schema -----------------------------------------------


def _names_and_displays(title: str, first_header: str) -> list[tuple[str, ...]]:
    rows = table(DOC.section(title, level=3), first_header)
    return [(cells[0].strip("`"), *cells[1:-1]) for _, cells in rows]


def test_default_pack_tags_table(pack: RuleSet) -> None:
    documented = []
    for name, display in _names_and_displays("Tags", "tag"):
        family = re.fullmatch(r"([a-z][a-z0-9_]*)_<[^>]+>", name)
        documented.append((family.group(1) if family else name, family is not None, display))
    assert documented == [(t.name, t.value is not None, t.display) for t in pack.tags]


def test_default_pack_stages_table(pack: RuleSet) -> None:
    assert pack.lifecycle is not None
    documented = _names_and_displays("Lifecycle stages", "stage")
    assert documented == list(pack.lifecycle.stages.items())


def test_default_pack_alerts_table(pack: RuleSet) -> None:
    documented = _names_and_displays("Alerts", "alert")
    assert documented == [(a.name, a.display, a.severity) for a in pack.alerts.values()]


def test_schema_covers_the_documented_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "rules"]) == 0
    schema = json.loads(capsys.readouterr().out)
    rows = table(DOC.section("The rule-file format"), "section")
    sections = {cells[0].strip("`") for _, cells in rows}
    assert set(schema["properties"]) == sections


TEXT_BLOCKS = [b for b in BLOCKS if b.lang == "text"]
WELCOME_CHECK = """
  welcome_check:
    severity: low
    display: 入会两周回访
    since: [member_join, check_in]
    after: 14d
"""


@pytest.mark.parametrize("block", TEXT_BLOCKS, ids=[b.id for b in TEXT_BLOCKS])
def test_diff_output_example(
    block: Block, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The only outputs shown are `tagger rules diff`'s, for the changes the guide describes:
    # a lower threshold, and a new timer alert (its notes name new-rules/).
    events = tmp_path / "events.jsonl"
    assert main(["simulate", "--users", "300", "--days", "120"]) == 0
    events.write_text(capsys.readouterr().out, encoding="utf-8")
    if "welcome_check" in block.text:
        new = edited_rules(tmp_path / "new-rules")
        with (new / "alerts.yaml").open("a", encoding="utf-8") as alerts:
            alerts.write(WELCOME_CHECK)
    else:
        edit = ("high_value_spend: 1000", "high_value_spend: 500")
        new = edited_rules(tmp_path / "new-rules", {"params.yaml": edit})
    command = ["--rules", str(new), "--against", str(BUNDLED_RULES), "--events", str(events)]
    assert main(["rules", "diff", *command]) == 0
    version = re.compile(r"version [0-9a-f]{12} -> [0-9a-f]{12}")
    got = version.sub("version V -> V", capsys.readouterr().out.rstrip())
    got = got.replace(f"{new}/", "new-rules/")
    assert got == version.sub("version V -> V", block.text.rstrip()), block.id

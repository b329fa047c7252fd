"""The README and the pages of docs/ say what the code does; checked here (docs/rules.md's
own examples are run by test_docs_rules.py).

- Every ``` block has a language this file checks: ```sh lines are commands that exist
  (``tagger`` ones parse with the real parser, ``python bench/...`` ones name a benchmark
  and its options, ``python -c`` ones compile), ```yaml blocks are rule files that
  compile, ```json and ```jsonl parse, ```python blocks (docs/outputs.md's schema check,
  consumer and CloudEvent) are run over real outputs.
- Inline ``tagger ...`` spans name real commands and options; every ``TAGGER_*`` variable
  named in any doc is a setting; every relative link reaches a file and heading.
- docs/configuration.md's table is exactly the settings with their defaults; the tables
  of topics (operations.md, outputs.md), alerts (operations.md, against alerts.yml) and
  event types (events.md) are exactly what the code has.
- docs/outputs.md's example is run: its rules and events through the command it shows
  give the output it shows, byte for byte; its dead letters and profile are what the
  worker's batch logic and the engine produce.
- docs/architecture.md names only modules that exist (or are about to: ``PLANNED``).
- The README links every page of docs/.

Test ids name the page and line where the example starts.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams import metrics
from streams.cli import build_parser, main
from streams.settings import BUILD_VARIABLES, Settings
from streams.topics import input_topics
from taggers import outputs
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import EVENT_TYPES, BehaviourEvent, to_epoch_ms
from taggers.outputs import kind_named
from taggers.pipeline import Pipeline, Record
from taggers.profile_record import profile_record
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.store import MemoryStore
from taggers.yaml_source import RuleSetError
from tests.support import ROOT
from tests.support.cli import older_rules_spelling
from tests.support.markdown import (
    Block,
    Page,
    anchor,
    shell_commands,
    shell_lines,
    spans,
    table,
    tagger_commands,
)

DOCS = ROOT / "docs"
RULES_GUIDE = DOCS / "rules.md"  # its examples: test_docs_rules.py
PAGES = [Page(ROOT / "README.md"), *(Page(p) for p in sorted(DOCS.glob("*.md")))]
ALL_PAGES = [*PAGES, Page(ROOT / "deploy" / "README.md")]
CHECKED = [p for p in PAGES if p.path != RULES_GUIDE]
KNOWN_LANGUAGES = frozenset({"yaml", "sh", "json", "jsonl", "text", "python"})

# Commands shown in ```sh blocks that the deploy tests check (docker-compose config,
# promtool, Kubernetes schemas) or that only change the shell.
OTHER_TOOLS = frozenset({"docker", "docker-compose", "kubectl", "promtool", "cd", "."})
# Placeholders of the command table, and a value each parses with.
PLACEHOLDER_VALUES = {"N": "1", "D": "1", "S": "1", "F": "0.1", "WHEN": "now"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.[a-z]+)?$")

# Modules docs/architecture.md names in the layout being moved into: each is missing on
# this tree until its move lands, and must then leave this list (a test says so).
PLANNED: frozenset[str] = frozenset()


def _page(name: str) -> Page:
    (page,) = [p for p in PAGES if p.path == DOCS / name]
    return page


def _blocks(lang: str, pages: list[Page] = CHECKED) -> list[Block]:
    return [b for p in pages for b in p.blocks if b.lang == lang]


def _prose_spans(pages: list[Page]) -> list[tuple[str, str]]:
    """(page:line, span) of every inline code span outside code blocks."""
    return [(f"{p.name}:{n}", s) for p in pages for n, line in p.prose() for s in spans(line)]


# --- fenced blocks ------------------------------------------------------------------------

ALL_BLOCKS = [b for p in CHECKED for b in p.blocks]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_block_has_a_checked_language(block: Block) -> None:
    assert block.lang in KNOWN_LANGUAGES, (
        f"{block.id}: a ``` block needs one of {sorted(KNOWN_LANGUAGES)} so that it is checked"
    )


SH_LINES = [(f"{p.name}:{n}", line) for p in CHECKED for n, line in shell_lines(p)]


def _check_bench(where: str, command: list[str]) -> None:
    script = ROOT / command[1]
    assert command[1].startswith("bench/") and script.is_file(), f"{where}: no {command[1]}"
    source = script.read_text(encoding="utf-8")
    for option in (w for w in command[2:] if w.startswith("--")):
        assert f'"{option}"' in source, f"{where}: {command[1]} has no option {option}"


@pytest.mark.parametrize(("where", "line"), SH_LINES, ids=[w for w, _ in SH_LINES])
def test_shell_line_runs_a_real_command(where: str, line: str) -> None:
    commands = shell_commands(line)
    assert commands, f"{where}: no command in {line!r}"
    for command in commands:
        program = command[0]
        if program == "tagger":
            try:
                parsed = build_parser().parse_args(command[1:])
            except SystemExit:
                pytest.fail(f"{where}: tagger rejects {' '.join(command)!r}")
            _check_options(where, command)
            _check_rules_spelling(where, command, parsed)
        elif program == "python" and command[1:2] == ["-c"]:
            compile(command[2], where, "exec")  # a one-line program: it parses
        elif program == "python":
            _check_bench(where, command)
        elif program.startswith("./"):
            assert (ROOT / program).is_file(), f"{where}: no {program}"
        else:
            assert program in OTHER_TOOLS, f"{where}: {program} is not a command this test checks"


@pytest.mark.parametrize("block", _blocks("yaml"), ids=[b.id for b in _blocks("yaml")])
def test_rule_file_compiles(block: Block, tmp_path: Path) -> None:
    _write_rules(tmp_path / "rules", block.text)
    try:
        load_rules(tmp_path / "rules")
    except RuleSetError as error:
        pytest.fail(f"{block.id}: " + "\n".join(str(p) for p in error.problems))


JSON_BLOCKS = _blocks("json") + _blocks("jsonl")


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[b.id for b in JSON_BLOCKS])
def test_json_parses(block: Block) -> None:
    _json_values(block)


def _json_values(block: Block) -> list[Any]:
    try:
        if block.lang == "json":
            return [json.loads(block.text)]
        return [json.loads(line) for line in block.text.splitlines()]
    except json.JSONDecodeError as error:
        pytest.fail(f"{block.id}: {error}")


# --- inline spans, settings, links --------------------------------------------------------


def _subcommand(words: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The parser of the subcommand the leading words name, and how many words name it."""
    parser, depth = build_parser(), 0
    while depth < len(words):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or words[depth] not in actions[0].choices:
            break
        parser, depth = actions[0].choices[words[depth]], depth + 1
    return parser, depth


def _check_options(where: str, command: list[str]) -> None:
    """The command names a subcommand (or gives only options of ``tagger`` itself, as
    ``tagger --version``), and each option it gives is one of that subcommand's, spelt out
    (argparse would take ``--rule`` for ``--rules``)."""
    parser, depth = _subcommand(command[1:])
    only_options = command[1:] and all(word.startswith("-") for word in command[1:])
    assert depth or only_options, f"{where}: {' '.join(command)!r} names no command"
    options = {o for a in parser._actions for o in a.option_strings}
    for word in command[1 + depth :]:
        if word.startswith("-") and word != "-":
            assert word.partition("=")[0] in options, f"{where}: {parser.prog} has no {word}"


def _check_rules_spelling(where: str, command: list[str], parsed: argparse.Namespace) -> None:
    """The docs name a rule directory as every command takes it, ``--rules DIR`` (and the
    live one as ``--against LIVE_DIR``): not as the older positional DIR that ``rules
    check``, ``test``, ``status`` and ``diff`` still accept for old scripts."""
    assert not older_rules_spelling(parsed), (
        f"{where}: {' '.join(command)!r}: name the rule directory with --rules DIR"
    )


INLINE_COMMANDS = [(w, s) for w, s in _prose_spans(PAGES) if s.startswith("tagger ")]


@pytest.mark.parametrize(("where", "span"), INLINE_COMMANDS, ids=[w for w, _ in INLINE_COMMANDS])
def test_inline_command_is_real(where: str, span: str) -> None:
    """A span names a command (``tagger replay``), shows a use with placeholders
    (``tagger replay EVENTS.jsonl [--rules DIR]``: it must parse), or names options of
    it (``tagger replay --json``: they must exist)."""
    commands = tagger_commands(span.replace("[", " ").replace("]", " "))
    assert commands, f"{where}: {span!r}"
    for command in commands:
        words = command[1:]
        _check_options(where, command)
        if any(PLACEHOLDER.match(w) for w in words):
            filled = [PLACEHOLDER_VALUES.get(w, "x") if PLACEHOLDER.match(w) else w for w in words]
            try:
                parsed = build_parser().parse_args(filled)
            except SystemExit:
                pytest.fail(f"{where}: {span!r} does not parse (as {' '.join(filled)!r})")
            _check_rules_spelling(where, command, parsed)


SETTINGS = {f"TAGGER_{name.upper()}": field for name, field in Settings.model_fields.items()}
VARIABLES = sorted(
    {
        (f"{p.name}:{n}", name)
        for p in ALL_PAGES
        for n, line in enumerate(p.lines, start=1)
        for name in re.findall(r"\bTAGGER_[A-Z][A-Z0-9_]*", line)
    }
)


@pytest.mark.parametrize(("where", "name"), VARIABLES, ids=[f"{w}:{n}" for w, n in VARIABLES])
def test_variable_is_a_setting(where: str, name: str) -> None:
    """Each variable the docs name is a setting, or one of the build's (read before the
    settings object exists), which docs/configuration.md lists under Build."""
    assert name in SETTINGS or name in BUILD_VARIABLES, f"{where}: {name} is no setting"


def test_the_build_variables_are_documented() -> None:
    rows = table(CONFIG.section("Build"), "variable")
    assert {cells[0].strip("`") for _, cells in rows} == set(BUILD_VARIABLES)


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LINKS = [
    (f"{p.name}:{n}", p, target)
    for p in ALL_PAGES
    for n, line in p.prose()
    for target in LINK.findall(line)
    if not re.match(r"[a-z]+:", target)
]


@pytest.mark.parametrize(("where", "page", "target"), LINKS, ids=[w for w, _, _ in LINKS])
def test_link_resolves(where: str, page: Page, target: str) -> None:
    file_part, _, fragment = target.partition("#")
    path = (page.path.parent / file_part).resolve() if file_part else page.path
    assert path.exists(), f"{where}: {target} names no file"
    if fragment:
        assert path.suffix == ".md", f"{where}: {target}: an anchor needs a Markdown page"
        anchors = {anchor(title) for title in Page(path).headings()}
        assert fragment in anchors, f"{where}: {target}: no such heading in {path.name}"


def test_readme_links_every_page() -> None:
    readme = PAGES[0]
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, line in readme.section("Documentation")
        for target in LINK.findall(line)
    }
    pages = {p.resolve() for p in DOCS.glob("*.md")}
    assert pages <= linked, f"not in the README's Documentation: {sorted(pages - linked)}"


def test_readme_is_the_front_door() -> None:
    """The README's set-up is two commands on a fresh machine, one that ends with the demo
    running and one that ends with the tests passing (each sets the machine up when it is
    not); CI runs that same test command; and the README stays short: the topics have
    pages of their own."""
    readme = PAGES[0]
    (quick_start,) = [b for b in readme.blocks if b.lang == "sh" and "demo.sh" in b.text]
    commands = [c for line in quick_start.text.splitlines() for c in shell_commands(line)]
    assert commands == [["./scripts/demo.sh"], ["./scripts/test.sh"]]
    for name, last in (
        ("demo.sh", "exec .venv/bin/tagger demo"),
        ("test.sh", "exec python -m pytest"),
    ):
        script = (ROOT / "scripts" / name).read_text(encoding="utf-8")
        assert "./scripts/setup.sh --if-needed" in script, name
        assert script.strip().splitlines()[-1].startswith(last), name
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/setup.sh" in ci and "./scripts/test.sh" in ci
    assert len(readme.lines) < 200, "the README is the front door: move topics to docs/"


# --- configuration ------------------------------------------------------------------------

OUTPUT_KINDS = {kind.name for kind in outputs.OUTPUT_KINDS}
"""The ``kind`` of each output class (the registry: the compiled classes keep no type hints)."""
CONFIG = _page("configuration.md")
OUTPUTS = _page("outputs.md")
# Unset by default, with the behaviour the table describes in words.
DESCRIBED_DEFAULTS = {"TAGGER_RULES_DIR": "`./rules`, else the bundled pack"}


def _documented_default(cell: str) -> str | None:
    if cell == "—":
        return None
    (value,) = spans(cell)
    return value


def _same_default(documented: str | None, default: Any) -> bool:
    if default is None or documented is None:
        return default is documented
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, int | float):
        return float(documented) == default
    return documented == str(default)


def test_configuration_table_is_every_setting_with_its_default() -> None:
    rows = table(CONFIG.section("Settings"), "variable")
    documented: dict[str, str] = {}
    for number, cells in rows:
        assert cells[2], f"configuration.md:{number}: say what the setting means"
        for name in spans(cells[0]):
            assert name not in documented, f"configuration.md:{number}: {name} twice"
            documented[name] = cells[1]
    assert sorted(documented) == sorted(SETTINGS), "the table and the settings differ"
    wrong = []
    for name, cell in documented.items():
        default = SETTINGS[name].default
        if name in DESCRIBED_DEFAULTS or (default is None and cell == "system CAs"):
            assert default is None and cell == DESCRIBED_DEFAULTS.get(name, cell), name
            continue
        if not _same_default(_documented_default(cell), default):
            wrong.append(f"{name}: documented {cell}, default {default!r}")
    assert not wrong, "\n".join(wrong)


# --- topics, alerts, event types ----------------------------------------------------------

TOPIC_SETTINGS = {n: f for n, f in SETTINGS.items() if n.endswith("_TOPIC")}


def _topic_rows(lines: list[tuple[int, str]], first_header: str) -> dict[str, str]:
    """topic -> the setting its row names, in a table of these lines."""
    rows = table(lines, first_header)
    found = {}
    for _, cells in rows:
        names = [s for cell in cells for s in spans(cell) if s in TOPIC_SETTINGS]
        topics = [s for s in spans(" ".join(cells)) if re.fullmatch(r"[a-z]+(-[a-z]+)+", s)]
        if names:
            found[topics[0]] = names[0]
    return found


def test_topics_table_names_every_topic_and_its_setting() -> None:
    rows = _topic_rows(_page("operations.md").section("Topics"), "topic")
    assert sorted(rows.values()) == sorted(TOPIC_SETTINGS)
    for topic, setting in rows.items():
        assert TOPIC_SETTINGS[setting].default == topic, f"{setting} is not {topic} by default"


def test_outputs_table_names_each_kind_and_its_topic() -> None:
    rows = table(OUTPUTS.prose(), "kind")
    documented = {spans(cells[0])[0] for _, cells in rows if spans(cells[0])}
    assert documented == OUTPUT_KINDS
    topics = _topic_rows(OUTPUTS.prose(), "kind")
    # Every row names a topic setting, but those of kinds sent to every output topic.
    everywhere = {name for name in documented if kind_named(name).everywhere}
    assert len(topics) == len(rows) - len(everywhere)
    for topic, setting in topics.items():
        assert TOPIC_SETTINGS[setting].default == topic


def test_alerts_table_is_the_alert_rules() -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = [(r["alert"], r["labels"]["severity"]) for g in rules["groups"] for r in g["rules"]]
    rows = table(_page("operations.md").section("Alerts and runbooks"), "alert")
    assert sorted((spans(c[0])[0], c[1]) for _, c in rows) == sorted(alerts)


def test_metrics_table_is_every_metric_the_worker_exports() -> None:
    types = re.findall(rb"^# TYPE (tagger_\w+) (\w+)", metrics.exposition(), re.MULTILINE)
    # A counter without labels also shows its creation time as a gauge: not ours.
    exported = {name for name, kind in types if kind != b"gauge" or not name.endswith(b"_created")}
    rows = table(_page("operations.md").section("Metrics"), "metric")
    documented = [s.split("{")[0] for _, cells in rows for s in spans(cells[0])]
    documented = [name for name in documented if name.startswith("tagger_")]
    assert len(documented) == len(set(documented)), "a metric is in the table twice"
    assert sorted(documented) == sorted(name.decode() for name in exported)


def test_event_tables_are_the_schema() -> None:
    section = _page("events.md").section("The event format")
    fields = {spans(cells[0])[0] for _, cells in table(section, "field")}
    assert fields == set(BehaviourEvent.model_fields)
    types = {s for _, cells in table(section, "type") for s in spans(cells[0])}
    assert types == set(EVENT_TYPES)


# --- docs/outputs.md: the example, run --------------------------------------------------------


def _write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "rules.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(BUNDLED_RULES / "lists", directory / "lists")
    return directory


def _example() -> tuple[Block, Block, list[str], Block]:
    """The example's rule file, events, command (without ``tagger``) and output."""
    (rules,) = [b for b in OUTPUTS.blocks if b.lang == "yaml"]
    events, output = [b for b in OUTPUTS.blocks if b.lang == "jsonl"]
    (line,) = [line for _, line in shell_lines(OUTPUTS) if line.startswith("tagger replay")]
    (command,) = shell_commands(line)
    return rules, events, command[1:], output


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding the example's rules/rules.yaml and events.jsonl, made current."""
    rules, events, _, _ = _example()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(rules.text, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(events.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_outputs_example_is_what_replay_prints(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, command, output = _example()
    assert main(command) == 0
    assert capsys.readouterr().out == output.text


def test_common_fields_are_every_kinds_fields() -> None:
    _, _, _, output = _example()
    records = [
        r for r in _json_values(output) if r["kind"] in ("tag_change", "transition", "alert")
    ]
    assert {r["kind"] for r in records} == {"tag_change", "transition", "alert"}
    common = set.intersection(*(set(r) for r in records))
    rows = table(OUTPUTS.section("Common fields"), "field")
    assert {spans(cells[0])[0] for _, cells in rows} == common


DEAD_LETTERS = [b for b in _blocks("json", [OUTPUTS]) if "reason" in json.loads(b.text)]


@pytest.mark.parametrize("block", DEAD_LETTERS, ids=[b.id for b in DEAD_LETTERS])
def test_dead_letter_is_what_the_worker_sends(block: Block) -> None:
    shown = json.loads(block.text)
    value = shown.get("value")
    raw = value.encode() if value is not None else base64.b64decode(shown["value_base64"])
    pipeline = Pipeline(Engine(load_rules(BUNDLED_RULES)), MemoryStore(copies=True), 65536)
    record = Record(shown["partition"], shown["offset"], raw, b"u1")
    (dead,) = pipeline.prepare(shown["partition"], [record]).dead
    settings = Settings()
    sent = orjson.loads(dead.to_json(input_topics(settings)))
    assert shown["topic"] == settings.events_topic
    assert sent == shown


def test_profile_example_is_what_the_engine_shows(example: Path) -> None:
    _, events, command, _ = _example()
    (profile_block,) = [b for b in _blocks("json", [OUTPUTS]) if "stage_display" in b.text]
    engine = Engine(load_rules(example / "rules"))
    store = MemoryStore()
    now = command[command.index("--now") + 1]
    replay = Replay(engine, store, sent_at=to_epoch_ms(now))
    list(replay.run(events.text.encode().splitlines()))
    profile = store.get("u1")
    assert profile is not None
    assert profile_record(engine, profile) == json.loads(profile_block.text)


# --- docs/architecture.md -----------------------------------------------------------------

MODULE = re.compile(r"^(?:taggers|streams|tests|rules|deploy|bench|docs)/[\w./]*$")
NAMED = sorted(
    {
        (f"docs/architecture.md:{n}", s)
        for n, line in _page("architecture.md").prose()
        for s in spans(line)
        if MODULE.match(s)
    }
)


@pytest.mark.parametrize(("where", "path"), NAMED, ids=[f"{w}:{p}" for w, p in NAMED])
def test_architecture_names_real_modules(where: str, path: str) -> None:
    if path in PLANNED:
        return  # see test_planned_modules_are_still_to_come
    assert (ROOT / path).exists(), f"{where}: {path} does not exist"


def test_planned_modules_are_still_to_come() -> None:
    named = {p for _, p in NAMED}
    arrived = sorted(p for p in PLANNED if (ROOT / p).exists())
    assert not arrived, f"these modules exist now: take them out of PLANNED: {arrived}"
    assert named >= PLANNED, f"PLANNED names what the page does not: {sorted(PLANNED - named)}"

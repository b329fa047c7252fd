"""For the tests of the output contract (the schemas, the headers, the Python of
docs/outputs.md): real events and outputs, the bundled pack replayed over a simulated
shop with bad lines, second ids, forgets and opt-outs, so that every output kind is among
them; stock validators of the schemas; the docs' Python blocks, to run."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from streams.cli.lookup import SCHEMAS
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.outputs import Output
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from tests.support import ROOT
from tests.support.markdown import Block, Page

SIMULATION = SimulationConfig(
    users=80, days=40, seed=4, malformed=0.05, identities=0.2, forgets=0.1, opt_outs=0.1
)
SIMULATE_ARGS = (
    *("--users", "80", "--days", "40", "--seed", "4", "--malformed", "0.05"),
    *("--identities", "0.2", "--forgets", "0.1", "--opt-outs", "0.1"),
)
"""``SIMULATION`` as ``tagger simulate`` options."""
REPLAY_LINES = frozenset({"error", "profile", "skipped"})
"""The kinds of ``tagger replay --json`` line that are not outputs."""
OUTPUTS_PAGE = Page(ROOT / "docs" / "outputs.md")
# What each Python block of docs/outputs.md does or defines, by which it is found.
CHECK, CONSUMER, CLOUDEVENT = "Draft202012Validator(", "def audience(", "def as_cloudevent("


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay's input lines, its outputs (in order) and the people at its end."""

    lines: list[str]
    outputs: list[Output]
    bad: list[BadLine]
    people: list[Profile]


@functools.cache
def replayed() -> Replayed:
    """The bundled pack over ``SIMULATION``, replayed (once per test process)."""
    lines = list(simulate(SIMULATION))
    store = MemoryStore()
    outputs: list[Output] = []
    bad: list[BadLine] = []
    for item in Replay(Engine(load_rules(BUNDLED_RULES)), store).run(lines):
        if isinstance(item, BadLine):
            bad.append(item)
        else:
            outputs.append(item)
    people = [p for user in store.users() if (p := store.get(user)) is not None]
    return Replayed(lines, outputs, bad, people)


def validator(name: str) -> Draft202012Validator:
    """A stock validator of the schema ``tagger schema NAME`` prints (as JSON, read back)."""
    schema: dict[str, Any] = orjson.loads(orjson.dumps(SCHEMAS[name]()))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def docs_block(marker: str) -> Block:
    """The Python block of docs/outputs.md that holds ``marker``."""
    (found,) = [b for b in OUTPUTS_PAGE.blocks if b.lang == "python" and marker in b.text]
    return found


def run_block(code: Block) -> dict[str, Any]:
    """The names a block defines, run as a module that is not ``__main__``."""
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code.text, code.id, "exec"), namespace)
    return namespace

"""Scaffolding for the tests and benchmarks (not shipped): ``core`` for the pure engine
(event factories, edited rule packs, an engine that fails on cue), ``stack`` for the real
servers (broker, Redis, worker processes, topics), ``hostile_rules`` for the rule files an
attacker would write."""

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
"""The checkout's top folder (README.md, docs/, deploy/, rules/)."""

__all__ = ["ROOT"]

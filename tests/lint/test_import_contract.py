"""The pure core is pure: ``taggers`` imports no I/O library, no ``streams`` and reads no
environment variable, directly (any module of it, read as source) or through what it
imports (checked in a fresh interpreter that imports all of it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

CORE = ROOT / "taggers"
FORBIDDEN = frozenset(
    {"streams", "redis", "faust", "aiokafka", "kafka", "prometheus_client", "mode", "aiohttp"}
)
"""What the core must not import: the I/O side, Kafka, Redis, HTTP and Prometheus."""
ENVIRONMENT = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})
"""The ``os`` names that read or change the environment: settings are the I/O side's."""


def core_modules() -> list[Path]:
    """Every Python file of the core."""
    return sorted(CORE.rglob("*.py"))


def breaches(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for each import of a forbidden module and each use of the
    environment in one module's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "os":
                names += [f"os.{a.name}" for a in node.names if a.name in ENVIRONMENT]
        elif isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                yield node.lineno, f"os.{node.attr}"
            continue
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN or name.startswith("os."):
                yield node.lineno, name


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import redis", ["redis"]),
        ("from streams.settings import Settings", ["streams.settings"]),
        ("import kafka.admin as k", ["kafka.admin"]),
        ("from prometheus_client import Counter", ["prometheus_client"]),
        ("import os\nx = os.environ['A']", ["os.environ"]),
        ("import os\nx = os.getenv('A')", ["os.getenv"]),
        ("from os import environ", ["os.environ"]),
        ("import os\nos.path.join('a')\nfrom taggers.events import x", []),
        ("from .events import x", []),
    ],
)
def test_the_check_finds_each_kind_of_breach(source: str, found: list[str]) -> None:
    assert [what for _, what in breaches(source)] == found


def test_no_core_module_imports_io_or_reads_the_environment() -> None:
    modules = core_modules()
    assert len(modules) > 20  # the whole core, not an empty glob
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in modules
        for line, what in breaches(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "the pure core reaches I/O:\n" + "\n".join(problems)


def test_importing_the_whole_core_loads_no_io_library() -> None:
    """Indirect imports too: whatever ``taggers`` pulls in must not pull these in."""
    script = (
        "import importlib, pkgutil, sys, taggers\n"
        "for m in pkgutil.walk_packages(taggers.__path__, 'taggers.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(FORBIDDEN)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]", result.stdout

"""Which build of the core runs: compiled where it is built, pure Python on request.

``.ci/run`` sets ``TEST_EXPECT_CORE`` (``compiled`` or ``pure``) for each of its passes,
so that a build that silently fell back to pure Python fails CI instead of testing the
wrong thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import taggers.engine.core
from streams.cli.entry import version_line
from streams.core_build import PURE_PYTHON_VARIABLE, core_is_compiled
from tests.support import ROOT

# A fresh interpreter: which modules of the core it imported, and from which files.
LOADED = (
    "import streams, sys\n"
    "from streams.core_build import core_is_compiled\n"
    "import taggers.replay, taggers.engine\n"
    "files = [m.__file__ for n, m in sorted(sys.modules.items())\n"
    "         if n.startswith('taggers.') and getattr(m, '__file__', None)]\n"
    "print(core_is_compiled())\n"
    "print('\\n'.join(files))\n"
)


def loaded(**environment: str) -> tuple[bool, list[str]]:
    """(whether the core is compiled, the files of the core's modules) in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != PURE_PYTHON_VARIABLE} | environment,
    )
    first, *files = done.stdout.splitlines()
    return first == "True", files


def built_here() -> bool:
    """Whether this checkout has the compiled modules (``pip install -e .`` with a compiler)."""
    return any((ROOT / "taggers" / "engine").glob(f"core{EXTENSION_SUFFIXES[0]}"))


def test_the_running_core_is_the_one_ci_expects() -> None:
    expected = os.environ.get("TEST_EXPECT_CORE")
    assert expected in {None, "compiled", "pure"}, expected
    if expected is not None:
        assert ("compiled" if core_is_compiled() else "pure") == expected


def test_tagger_version_names_the_running_core() -> None:
    line = version_line()
    assert line.startswith("tagger ")
    assert ("compiled core" in line) == core_is_compiled()
    assert core_is_compiled() == taggers.engine.core.__file__.endswith(tuple(EXTENSION_SUFFIXES))


def test_pure_python_on_request_imports_no_compiled_module_of_the_core() -> None:
    compiled, files = loaded(**{PURE_PYTHON_VARIABLE: "1"})
    assert not compiled
    assert files and all(name.endswith(".py") for name in files), files


def test_without_the_request_a_built_checkout_runs_compiled() -> None:
    compiled, files = loaded()
    assert compiled == built_here()
    if built_here():
        assert any(name.endswith(tuple(EXTENSION_SUFFIXES)) for name in files), files

"""Build: the core's hot modules compiled with mypyc where a C compiler is present.

Everything else about the package is in pyproject.toml; this file only adds the compiled
extension modules. The pure Python package is always complete: a compiled module is the
same source built to C, and Python imports it instead of the ``.py`` beside it. So when
there is no compiler (or ``TAGGER_COMPILE=0``), the build says so and the package runs as
pure Python, the same code, slower. ``tagger --version`` says which build is running.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The modules an event passes through: the engine and what it calls per event, including
# the expression language's evaluators (the compiler's closures) and the identity steps.
# Left out: what only runs when rules load (the parser, type checker and rule compiler:
# compiling them would double the build's time for no event's gain), modules whose
# classes are pydantic models (events, rule files, rule tests), which mypyc cannot
# compile, and the package __init__ files, which only re-export.
COMPILED = [
    "taggers/aggregates/*.py",
    "taggers/engine/*.py",
    "taggers/expr/access.py",
    "taggers/expr/calls.py",
    "taggers/expr/compiler.py",
    "taggers/expr/dates.py",
    "taggers/expr/macros.py",
    "taggers/expr/maps.py",
    "taggers/expr/operators.py",
    "taggers/expr/runtime.py",
    "taggers/expr/words.py",
    "taggers/ruleset/model.py",
    "taggers/calendars.py",
    "taggers/clock.py",
    "taggers/event_values.py",
    "taggers/fast_decode.py",
    "taggers/durations.py",
    "taggers/identity.py",
    "taggers/localdays.py",
    "taggers/outputs.py",
    "taggers/pipeline.py",
    "taggers/profile.py",
    "taggers/replay.py",
    "taggers/store.py",
]

# The one shared library of the compiled modules is a top-level module of this name.
GROUP = "taggers_native"


def say(message: str) -> None:
    """A line of the build's output that pip shows (stderr), prefixed to be found."""
    print(f"realtime-tagger build: {message}", file=sys.stderr)


def sources() -> list[str]:
    """The files of ``COMPILED`` that exist, without package ``__init__`` files."""
    root = Path(__file__).parent
    found = sorted(
        str(path.relative_to(root))
        for pattern in COMPILED
        for path in root.glob(pattern)
        if path.name != "__init__.py"
    )
    return found


# The commands that build the package's files. pip also runs this file only to read the
# metadata; mypyc (a whole type check) runs only for a build.
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def compiled_extensions() -> list[Any]:
    """mypyc's extension modules, or none (with the reason said) for a pure Python build."""
    if not BUILDING.intersection(sys.argv[1:]):
        return []
    if os.environ.get("TAGGER_COMPILE", "1") == "0":
        say("TAGGER_COMPILE=0: building pure Python")
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 (a build without mypyc is pure)
    except ImportError:
        say("mypyc is not installed: building pure Python")
        return []
    # One C file per module (multi_file), compiled in parallel (ParallelBuildExt): a
    # single file of every module takes gcc minutes on one core.
    return list(mypycify(sources(), opt_level="2", group_name=GROUP, multi_file=True))


class OptionalBuildExt(build_ext):
    """build_ext that compiles an extension's C files in parallel, one gcc per core, and
    falls back to pure Python when the C build fails (no compiler, no Python headers),
    removing any part of the compiled modules it made: a compiled module without its
    shared library would not import."""

    def build_extension(self, ext: Any) -> None:
        """Build ``ext`` with its C files compiled concurrently (gcc does the work; the
        threads only wait for it)."""
        compile_serially = self.compiler.compile

        def compile_concurrently(sources: list[str], **options: Any) -> list[str]:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                objects = pool.map(lambda source: compile_serially([source], **options), sources)
                return [name for names in objects for name in names]

        self.compiler.compile = compile_concurrently
        try:
            super().build_extension(ext)
        finally:
            self.compiler.compile = compile_serially

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # the compiler's errors have no common type
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            say(f"could not compile the core ({error}): building pure Python")


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": OptionalBuildExt})

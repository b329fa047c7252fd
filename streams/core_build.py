"""Which build of the core runs: the compiled one where it is installed, or pure Python.

The build compiles the core's hot modules with mypyc where a C compiler is present
(setup.py); Python then imports each compiled module instead of the ``.py`` beside it.
``TAGGER_PURE_PYTHON=1`` runs the pure Python source of those same modules instead,
without reinstalling: to tell whether a problem is the compiler's, and so that the test
suite can run the core both ways from one installation.

The ``streams`` package imports this module before anything else, so the choice is made
before any module of ``taggers`` is imported; it is read from the environment directly,
not from the settings object, for the same reason.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from types import ModuleType

PURE_PYTHON_VARIABLE = "TAGGER_PURE_PYTHON"
CORE_PACKAGE = "taggers"
# A module every compiled build compiles: whether it is compiled says which build runs.
PROBE_MODULE = "taggers.engine.core"


class SourceOnlyFinder(MetaPathFinder):
    """Finds the core's modules as ``.py`` source only, never as compiled extensions."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of ``fullname``'s source file, for the core's modules; None otherwise
        (the next finder looks, as for a package mapped elsewhere, like the rule pack)."""
        if not fullname.startswith(CORE_PACKAGE + ".") or path is None:
            return None
        for entry in path:
            finder = importlib.machinery.FileFinder(
                entry,
                (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
            )
            spec = finder.find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def pure_python_requested() -> bool:
    """Whether ``TAGGER_PURE_PYTHON`` asks for the pure Python core."""
    return os.environ.get(PURE_PYTHON_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def select_core() -> None:
    """Make the core's modules import as pure Python if that is asked for (and only then).

    Must run before the first import of a ``taggers`` submodule: a module already
    imported stays what it is.
    """
    if pure_python_requested() and not any(
        isinstance(finder, SourceOnlyFinder) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, SourceOnlyFinder())


def core_is_compiled() -> bool:
    """Whether the running core is the compiled build."""
    module = sys.modules.get(PROBE_MODULE) or importlib.import_module(PROBE_MODULE)
    filename = getattr(module, "__file__", None) or ""
    return filename.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def core_description() -> str:
    """How ``tagger --version`` and the worker's start-up log name the running core."""
    if core_is_compiled():
        return "compiled core (mypyc)"
    if pure_python_requested():
        return f"pure Python core ({PURE_PYTHON_VARIABLE}=1)"
    return "pure Python core (not compiled: see the README's performance section)"


select_core()

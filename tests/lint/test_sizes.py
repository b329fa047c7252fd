"""Parts a reader can hold in mind: no class over 300 lines and no function over 80 in the
shipped packages. (ruff holds each function's complexity and statement count: see
pyproject.toml's C901 and PLR0915 settings, run by tests/lint/test_lint.py.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.support import ROOT

MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80
SHIPPED = ("taggers", "streams")


def oversized(source: str) -> Iterator[tuple[int, str, int]]:
    """(line, name, length) of each class or function of a module that is too long."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            limit = MAX_CLASS_LINES
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit = MAX_FUNCTION_LINES
        else:
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > limit:
            yield node.lineno, node.name, length


@pytest.mark.parametrize(
    ("lines", "found"),
    [(MAX_FUNCTION_LINES, 0), (MAX_FUNCTION_LINES + 1, 1)],
)
def test_the_check_counts_a_functions_lines(lines: int, found: int) -> None:
    body = "\n".join("    x = 1" for _ in range(lines - 1))
    assert len(list(oversized(f"def f():\n{body}\n"))) == found


def test_no_class_or_function_of_the_shipped_packages_is_too_long() -> None:
    modules = [p for top in SHIPPED for p in sorted((ROOT / top).rglob("*.py"))]
    assert len(modules) > 30
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {name} has {length} lines"
        for path in modules
        for line, name, length in oversized(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "\n".join(problems)

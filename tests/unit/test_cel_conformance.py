"""CEL's own conformance cases (google/cel-spec, tests/simple), run through compile_expression.

The data is tests/data/cel/simple.json, made by scripts/cel_conformance.py from a cel-spec
commit (it names the commit; Apache-2.0, tests/data/cel/LICENSE). A case is inside our
subset unless its text uses a construct the language does not have (``OUTSIDE``) or its
expected value is of a type it has no values of; every case inside must agree with CEL, or
be in ``KNOWN_DIFFERENCES`` with the reason, one of ``REASONS``. So a new difference fails
here, and so does a fixed one still listed. docs/rules.md's table "Differences from CEL"
has a row for every reason (tests/docs/test_docs_rules.py checks it against ``REASONS``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pytest

from taggers.expr import (
    BOOL,
    DOUBLE,
    DYN,
    FUNCTIONS,
    INT,
    MACROS,
    METHODS,
    NULL,
    STRING,
    ExprError,
    Type,
    compile_expression,
    list_of,
    map_of,
)
from tests.support import ROOT

DATA: Final = json.loads((ROOT / "tests" / "data" / "cel" / "simple.json").read_text("utf-8"))

_STRINGS: Final = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
OUTSIDE: Final = {
    "unsigned int": re.compile(r"\b(\d+|0x[0-9a-fA-F]+)[uU]\b|\buint\b"),
    "hex int": re.compile(r"\b0x[0-9a-fA-F]"),
    "map literal": re.compile(r"\{"),
    "bytes or raw string": re.compile(r"(?<![\w.])[bBrR]{1,2}['\"]"),
    "triple-quoted string": re.compile(r"'''|\"\"\""),
    "qualified name": re.compile(r"(?<![\w\]\)])\.\w|\b[a-z]+\.[A-Z]\w*|\bgoogle\b"),
    "optional": re.compile(r"\.\?|\[\?|\boptional\b"),
    "reserved word as name": re.compile(r"\b(?:package|namespace|as|var|let|loop|void)\b"),
    "two-variable macro": re.compile(
        r"\.(?:all|exists|exists_one|filter|map)\(\s*\w+\s*,\s*\w+\s*,"
    ),
}
"""Constructs of CEL the rule language does not have, found in a case's text (outside its
string literals, except the string kinds themselves)."""
_CALL: Final = re.compile(r"(?<![\w])(\.?)([A-Za-z_]\w*)\s*\(")
_TYPES: Final = {
    "int64": INT,
    "double": DOUBLE,
    "string": STRING,
    "bool": BOOL,
    "null_value": NULL,
    "list_type": list_of(DYN),
    "map_type": map_of(DYN),
}

REASONS: Final = {
    "true && 1/0 != 0": "an error in CEL is null here, and a comparison with null is false:"
    " a condition built on an error is false, a list built on one holds null",
    "1.0 / 0.0": "dividing by zero gives null, not infinity or NaN",
    "7 / 2": "/ on two ints gives a double",
    "x || true": "names and types are checked when the rules load, more strictly than CEL",
    "int(timestamp('2009-02-13T23:31:30Z'))": "timestamps are whole milliseconds between 2000"
    " and 2100: int() of one gives milliseconds, and a timestamp() outside that range, finer"
    " than a millisecond or of a number is a problem when the rules load",
}
"""Why a case differs, by the example that docs/rules.md's "Differences from CEL" shows."""
DOCUMENTED_ONLY: Final = frozenset({"event.props.nope", "14d"})
"""The examples of that table that no conformance case inside the subset shows: a missing
key (CEL: an error) gives null, as an error does; durations are written like 14d."""
_NULL, _BY_ZERO, _INT_DIVISION, _AT_LOAD, _MILLISECONDS = REASONS

KNOWN_DIFFERENCES: Final[dict[str, str]] = {
    "basic/variables/unbound_is_runtime_error": _AT_LOAD,
    "comparisons/ne_literal/not_ne_double_nan": _BY_ZERO,
    "comparisons/ne_literal/ne_double_nan": _BY_ZERO,
    "comparisons/bound/null_lt_right_no_such_overload": _NULL,
    "fp_math/fp_math/divide_zero": _BY_ZERO,
    "integer_math/int64_math/divide_positive_positive": _INT_DIVISION,
    "integer_math/int64_math/divide_positive_negative": _INT_DIVISION,
    "integer_math/int64_math/divide_negative_negative": _INT_DIVISION,
    "integer_math/int64_math/int64_min_negate_div": _INT_DIVISION,
    "logic/conditional/error_case": _NULL,
    "logic/conditional/mixed_type": _AT_LOAD,
    "logic/AND/short_circuit_type_left": _AT_LOAD,
    "logic/AND/short_circuit_type_right": _AT_LOAD,
    "logic/AND/error_right": _NULL,
    "logic/AND/error_left": _NULL,
    "logic/OR/short_circuit_type_left": _AT_LOAD,
    "logic/OR/short_circuit_type_right": _AT_LOAD,
    "logic/OR/error_right": _NULL,
    "logic/OR/error_left": _NULL,
    "macros/exists/list_elem_exists_error": _NULL,
    "macros/all/list_elem_type_exhaustive": _NULL,
    "macros/all/list_elem_error_exhaustive": _NULL,
    "macros/exists_one/list_no_shortcircuit": _NULL,
    "macros/map/list_many": _INT_DIVISION,
    "macros/map/list_error": _NULL,
    "macros/filter/list_no_shortcircuit": _NULL,
    "parse/repeat/mul_div": _INT_DIVISION,
    "conversions/int/timestamp": _MILLISECONDS,
    "conversions/identity/timestamp": _MILLISECONDS,
    "timestamps/timestamp_conversions/toInt_timestamp": _MILLISECONDS,
    "timestamps/timestamp_conversions/toString_timestamp_nanos": _MILLISECONDS,
    "timestamps/timestamp_equality/neq_same": _MILLISECONDS,
}
"""Cases inside the subset that differ from CEL, with the reason (a key of REASONS)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One conformance case, its CEL result made Python (``value``) or an error."""

    id: str
    expr: str
    bindings: Mapping[str, Any]
    names: Mapping[str, Type]
    error: bool
    value: Any


class UnrepresentableError(Exception):
    """A value of a type rule expressions have no values of (uint, bytes, type...)."""


def python(value: Mapping[str, Any]) -> Any:
    """A CEL value of the data file as the Python value an expression gives."""
    ((kind, data),) = value.items()
    if kind == "null":
        return None
    if kind in ("bool", "string", "int64"):
        return data
    if kind == "double":
        return float(data)
    if kind == "list":
        return [python(item) for item in data]
    if kind == "map" and all(list(key) == ["string"] for key, _ in data):
        return {key["string"]: python(item) for key, item in data}
    raise UnrepresentableError(kind)


def outside(case: Mapping[str, Any]) -> str | None:
    """Why a case is outside the subset, or None when it is inside."""
    text = case["expr"]
    bare = _STRINGS.sub("''", text)
    for construct, pattern in OUTSIDE.items():
        if pattern.search(text if construct.endswith("string") else bare):
            return construct
    for dot, name in _CALL.findall(bare):
        known = (METHODS + MACROS) if dot else FUNCTIONS
        if name not in known:
            return f"function {name}"
    if case["container"] or not case["macros"]:
        return "container or macros off"
    if any(t not in _TYPES for t in case["declared"].values()):
        return "declared type"
    if any("." in name for name in (*case["bindings"], *case["declared"])):
        return "qualified name"
    try:
        for item in (*case["bindings"].values(), case["expected"].get("value", {"null": None})):
            python(item)
    except UnrepresentableError as error:
        return f"{error} value"
    return None


def load(case: Mapping[str, Any]) -> Case:
    """A case inside the subset, ready to run."""
    bindings = {name: python(value) for name, value in case["bindings"].items()}
    names = {name: DYN for name in bindings}
    names.update({name: _TYPES[t] for name, t in case["declared"].items()})
    expected = case["expected"]
    value = python(expected["value"]) if "value" in expected else None
    return Case(case["id"], case["expr"], bindings, names, "error" in expected, value)


def same(got: Any, want: Any) -> bool:
    """Equal with CEL's types: 1 is not 1.0 nor true; NaN is NaN; a list is a list."""
    if isinstance(got, tuple):
        got = list(got)
    if type(got) is not type(want):
        return False
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    if isinstance(want, list):
        return len(got) == len(want) and all(map(same, got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return bool(got == want)


def agrees(case: Case) -> bool:
    """Whether our answer is CEL's: the value, or for an error a compile error or null."""
    try:
        got = compile_expression(case.expr, case.names).evaluate(case.bindings)
    except ExprError:
        return case.error
    return got is None if case.error else same(got, case.value)


ALL: Final = DATA["cases"]
INSIDE: Final = [load(case) for case in ALL if outside(case) is None]


def test_the_data_names_its_source_and_most_cases_are_inside() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", DATA["commit"])
    assert "Apache-2.0" in DATA["license"]
    assert (ROOT / "tests" / "data" / "cel" / "LICENSE").read_text("utf-8").count("Apache") > 0
    assert len(ALL) > 1000
    assert len(INSIDE) > 300


@pytest.mark.parametrize("case", INSIDE, ids=[case.id for case in INSIDE])
def test_a_case_inside_the_subset_agrees_with_cel_or_is_a_known_difference(case: Case) -> None:
    if case.id in KNOWN_DIFFERENCES:
        assert not agrees(case), f"{case.id} now agrees with CEL: remove it from the list"
    else:
        assert agrees(case), f"{case.expr!r}: CEL gives {case.value!r} (error: {case.error})"


def test_known_differences_are_cases_inside_with_a_reason() -> None:
    inside = {case.id for case in INSIDE}
    assert set(KNOWN_DIFFERENCES) <= inside
    assert set(KNOWN_DIFFERENCES.values()) == set(REASONS)

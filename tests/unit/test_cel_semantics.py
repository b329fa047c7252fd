"""CEL's meaning where rules use CEL's syntax: null in comparisons, equality, lists, int(),
``%``, indexes, int64 overflow and the list macros (``exists``, ``all``, ``exists_one``,
``filter``, ``map``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.expr import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    ExprError,
    Type,
    compile_expression,
    list_of,
    map_of,
    object_of,
)
from taggers.expr.macros import MAX_STEPS
from tests.support import ROOT

NAMES: dict[str, Type] = {
    "a": DYN,
    "b": DYN,
    "orders": INT,
    "spend": DOUBLE,
    "stage": STRING,
    "last_nps_score": DYN,
    "words": list_of(STRING),
    "event": object_of({"type": STRING, "props": map_of(DYN)}),
}
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


def evaluate(source: str, **values: Any) -> Any:
    return compile_expression(source, NAMES).evaluate(values)


def error_of(source: str) -> ExprError:
    with pytest.raises(ExprError) as caught:
        compile_expression(source, NAMES)
    return caught.value


def literal(value: Any) -> str:
    """``value`` written as an expression: JSON is CEL for these, but for true and null."""
    return json.dumps(value, ensure_ascii=False)


SCALARS = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
VALUES = st.recursive(
    SCALARS | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
PRESENT = VALUES.filter(lambda value: value is not None)


# --- null: a comparison with a missing value is false ---------------------------------------


@settings(max_examples=200, deadline=None)
@given(PRESENT, st.sampled_from(COMPARISONS))
def test_a_comparison_with_a_missing_value_is_false(x: Any, op: str) -> None:
    """Either side, both read at run time: ``!=`` too."""
    assert evaluate(f"a {op} b", a=None, b=x) is False
    assert evaluate(f"a {op} b", a=x, b=None) is False
    assert evaluate("a in b", a=None, b=[x]) is False
    assert evaluate("a in b", a=x, b=None) is False


@settings(max_examples=200, deadline=None)
@given(SCALARS, st.sampled_from(COMPARISONS))
def test_a_missing_value_compared_with_a_constant_is_false(x: Any, op: str) -> None:
    """The fast paths (a name against a constant, as most rules are written) too."""
    assert evaluate(f"a {op} {literal(x)}", a=None) is False
    assert evaluate(f"{literal(x)} {op} a", a=None) is False
    assert evaluate(f"a in [{literal(x)}]", a=None) is False


@settings(max_examples=100, deadline=None)
@given(PRESENT)
def test_null_literal_tests_presence(x: Any) -> None:
    for source, missing, present in [
        ("a == null", True, False),
        ("null == a", True, False),
        ("a != null", False, True),
        ("null != a", False, True),
    ]:
        assert evaluate(source, a=None) is missing, source
        assert evaluate(source, a=x) is present, source


def test_what_rule_authors_meet() -> None:
    assert evaluate("last_nps_score != 10", last_nps_score=None) is False
    assert evaluate("last_nps_score != 10", last_nps_score=7) is True
    assert evaluate("true && 1/0 != 0") is False
    assert evaluate("!(1/0 == 0)") is True  # a condition that is false, negated
    assert evaluate("event.props.coupon != 'X'", event={"props": {}}) is False
    assert evaluate("null == null") is True


# --- equality -------------------------------------------------------------------------------


def tupled(value: Any) -> Any:
    """``value`` as a list literal evaluates (tuples), where an event gives lists."""
    if isinstance(value, list):
        return tuple(tupled(item) for item in value)
    if isinstance(value, dict):
        return {key: tupled(item) for key, item in value.items()}
    return value


@settings(max_examples=200, deadline=None)
@given(PRESENT)
def test_an_event_value_equals_itself_as_a_literal_would_give_it(x: Any) -> None:
    assert evaluate("a == b", a=x, b=tupled(x)) is True
    assert evaluate("a != b", a=x, b=tupled(x)) is False


@settings(max_examples=200, deadline=None)
@given(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
)
def test_a_bool_never_equals_a_number(flag: bool, number: float) -> None:
    for source in ("a == b", "b == a", "a in [b]", "[a] == [b]"):
        assert evaluate(source, a=flag, b=number) is False, source
    assert evaluate("a != b", a=flag, b=number) is True
    assert evaluate(f"a == {literal(number)}", a=flag) is False
    assert evaluate(f"a in [{literal(number)}, 'x']", a=flag) is False
    assert evaluate(f"a < {literal(number)}", a=flag) is False


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("event.props.items == [1, 2]", {"event": {"props": {"items": [1, 2]}}}, True),
        ("event.props.items == [1, 2.0]", {"event": {"props": {"items": [1.0, 2]}}}, True),
        ("event.props.items == [1, 2]", {"event": {"props": {"items": [1, True]}}}, False),
        ("2 in event.props.items", {"event": {"props": {"items": [1, 2]}}}, True),
        ("[1, 2] in [event.props.items]", {"event": {"props": {"items": [1, 2]}}}, True),
        ("a == 1", {"a": True}, False),
        ("a in [1, 2]", {"a": True}, False),
        ("a == b", {"a": {"k": [1]}, "b": {"k": (1,)}}, True),
        ("a == b", {"a": [None], "b": [None]}, True),  # inside a list, null is a value
        ("a < b", {"a": [1], "b": [2]}, False),  # lists are not ordered
        ("a < b", {"a": False, "b": True}, True),
        ("false < true", {}, True),
        ("'k' in a", {"a": {"k": 1}}, True),
        ("1 in a", {"a": {"1": 1}}, False),
    ],
)
def test_equality_and_membership_are_cels(
    source: str, values: dict[str, Any], expected: bool
) -> None:
    assert evaluate(source, **values) is expected


# --- lists, int(), %, indexes, overflow -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("event.props.items + [3]", {"event": {"props": {"items": [1, 2]}}}, [1, 2, 3]),
        ("[] + [3, 4]", {}, [3, 4]),
        ("[1, 2] + []", {}, [1, 2]),
        (
            "size(event.props.items + words)",
            {"event": {"props": {"items": [1]}}, "words": ("x",)},
            2,
        ),
        ("a + 1", {"a": True}, None),  # true is not 1
        ("int('12345678901234567')", {}, 12345678901234567),
        ("int('-42') + int('+1')", {}, -41),
        ("int(a)", {"a": "1e3"}, None),
        ("int(a)", {"a": " 12 "}, None),
        ("int(a)", {"a": "1_000"}, None),
        ("int(a)", {"a": "٣"}, None),  # a digit of another script
        ("int(a)", {"a": "9223372036854775808"}, None),  # past int64
        ("int(a)", {"a": True}, None),
        ("int(2.9)", {}, 2),  # truncated toward zero, as CEL
        ("int(-2.9)", {}, -2),
        ("int(a)", {"a": 1e19}, None),  # CEL: an error
        ("int(a)", {"a": float("nan")}, None),
        ("-3 % 5", {}, -3),
        ("3 % -5", {}, 3),
        ("-7 % -3", {}, -1),
        ("orders % 0", {"orders": 3}, None),
        ("a % 2", {"a": 2.5}, None),  # no % on doubles
        ("[1, 2, 3][-1]", {}, None),
        ("[1, 2, 3][2]", {}, 3),
        ("a[b]", {"a": [1, 2], "b": True}, None),
        ("9223372036854775807 + 1", {}, None),
        ("orders * orders", {"orders": 2**32}, None),
        ("-a", {"a": -(2**63)}, None),
        ("orders - 1", {"orders": -(2**63)}, None),
        ("9223372036854775807 + 0", {}, 2**63 - 1),
        ("[1, 'x'][1]", {}, "x"),  # items of two kinds: a list of dyn
    ],
)
def test_values_are_cels(source: str, values: dict[str, Any], expected: Any) -> None:
    got = evaluate(source, **values)
    assert (list(got) if isinstance(got, tuple) else got) == expected
    assert type(got) is type(expected) or isinstance(got, tuple)


def test_list_concatenation_type_checks() -> None:
    assert compile_expression("[] + [3, 4]", NAMES).type == list_of(DYN)
    assert compile_expression("[1] + [2]", NAMES).type == list_of(INT)
    assert compile_expression("event.props.items + [3]", NAMES).type == DYN
    assert compile_expression("size(words + ['x']) > 1", NAMES).type == BOOL


@pytest.mark.parametrize(
    ("source", "message", "hint"),
    [
        ("int('1e3') > 1", "int('1e3') can never give a value", "digits with an optional sign"),
        ("int(' 12 ') > 1", "int(' 12 ') can never give a value", "digits"),
        ("int('99999999999999999999') > 1", "can never give a value", "64-bit"),
        ("int(1e300) > 1", "int(1e+300) can never give a value", "64-bit"),
        ("double('x') > 1", "double('x') can never give a value", "double('2.5')"),
        ("spend % 2 == 0", "cannot use % on double and int", "% works on ints"),
    ],
)
def test_a_constant_that_can_never_convert_is_a_problem(
    source: str, message: str, hint: str
) -> None:
    error = error_of(source)
    assert message in error.message
    assert error.hint is not None and hint in error.hint


# --- the list macros ------------------------------------------------------------------------

ORDER = {
    "event": {
        "type": "purchase",
        "props": {
            "items": [
                {"sku": "a", "category": "美妆", "price": 120},
                {"sku": "b", "category": "食品", "price": 30},
                {"sku": "c", "category": "美妆", "price": 80},
            ]
        },
    }
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.props.items.exists(i, i.category == '美妆')", True),
        ("event.props.items.exists(i, i.category == '服饰')", False),
        ("event.props.items.all(i, i.price > 20)", True),
        ("event.props.items.all(i, i.price > 50)", False),
        ("event.props.items.exists_one(i, i.price > 100)", True),
        ("event.props.items.exists_one(i, i.category == '美妆')", False),
        ("event.props.items.filter(i, i.category == '美妆').map(i, i.sku)", ["a", "c"]),
        ("size(event.props.items.filter(i, i.price >= 80)) >= 2", True),
        ("event.props.items.map(i, i.price * 2)", [240, 60, 160]),
        ("event.props.items.map(i, i.nope)", [None, None, None]),
        ("event.props.items.exists(i, i.nope != 1)", False),  # missing: false
        ("event.props.items.all(i, i.nope != 1)", False),
        ("event.props.items.exists(i, event.props.items.exists(j, j.price > i.price))", True),
        ("event.props.none.exists(i, true)", None),  # no list: null, a false condition
        ("[].all(i, false)", True),
        ("[].exists(i, true)", False),
        ("['a', 'b'].map(s, s + stage)", ["ax", "bx"]),
        ("event.props.exists(k, k == 'items')", True),  # a map: its keys
    ],
)
def test_what_the_macros_compute(source: str, expected: Any) -> None:
    got = evaluate(source, stage="x", **ORDER)
    assert (list(got) if isinstance(got, tuple) else got) == expected


def test_macros_are_typed() -> None:
    assert compile_expression("words.map(w, w.size())", NAMES).type == list_of(INT)
    assert compile_expression("words.filter(w, w == 'x')", NAMES).type == list_of(STRING)
    assert compile_expression("event.props.items.map(i, i.price)", NAMES).type == list_of(DYN)
    assert compile_expression("words.exists(w, w == 'x')", NAMES).type == BOOL


def test_a_macro_reads_the_names_of_its_body_not_its_item() -> None:
    compiled = compile_expression("words.exists(w, w == stage)", NAMES)
    assert compiled.reads == frozenset({"words", "stage"})
    assert compiled.evaluate({"words": ("x", "y"), "stage": "y"}) is True


def test_a_constant_macro_is_folded() -> None:
    compiled = compile_expression("[1, 2, 3].filter(x, x > 1)", NAMES)
    assert compiled.reads == frozenset()
    assert list(compiled.evaluate({})) == [2, 3]


@pytest.mark.parametrize(
    ("source", "offset", "message", "hint"),
    [
        ("words.exists(orders, orders > 1)", 13, "'orders' is already a name rules read", "e.g. i"),
        (
            "words.exists(i, words.all(i, i == 'x'))",
            26,
            "'i' is already an outer macro's item",
            "e.g. j",
        ),
        ("words.exists('x', true)", 13, "the first argument of exists is a new name", "exists(i,"),
        ("words.exists(i)", 6, "exists takes a new name and a condition", "exists(i,"),
        ("words.all(w, w)", 13, "expected true or false here, but this is a string", None),
        ("orders.exists(i, true)", 0, "exists goes through a list, not an int", None),
        ("words.exist(i, true)", 6, "unknown method 'exist'", "did you mean 'exists'?"),
        ("i > 1 && words.exists(i, i == 'x')", 0, "unknown name 'i'", None),
    ],
)
def test_macro_mistakes_are_problems_with_hints(
    source: str, offset: int, message: str, hint: str | None
) -> None:
    error = error_of(source)
    assert error.message.startswith(message), error.message
    assert error.offset == offset
    if hint is not None:
        assert error.hint is not None and hint in error.hint


def test_the_work_of_macros_is_bounded() -> None:
    """A macro and those inside it evaluate their bodies MAX_STEPS times at most: past that,
    null (a false condition), fast, whatever the event's lists."""
    many = list(range(MAX_STEPS + 1))
    assert evaluate("a.exists(x, x == 0)", a=many) is None
    assert evaluate("a.exists(x, x == 0)", a=many[:-1]) is True
    square = list(range(40))  # 40 + 40 * 40 steps: more than the budget
    started = time.monotonic()
    assert evaluate("a.exists(x, a.exists(y, y > x + 100))", a=square) is None
    deep = "a.exists(x, a.exists(y, a.exists(z, a.exists(w, w > 99))))"
    assert evaluate(deep, a=list(range(1000))) is None
    assert time.monotonic() - started < 1.0
    assert evaluate("a.exists(x, a.exists(y, y > x))", a=list(range(30))) is True


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["exists", "all", "exists_one", "filter", "map"]),
    st.sampled_from(["x > 1", "x == b", "x.k != null", "x in b", "x + b == x", "size(x) > 0"]),
    VALUES,
    VALUES,
)
def test_macros_never_raise(macro: str, body: str, a: Any, b: Any) -> None:
    compiled = compile_expression(f"a.{macro}(x, {body})", NAMES)
    compiled.evaluate({"a": a, "b": b})


def test_the_guide_states_the_bound() -> None:
    guide = (ROOT / "docs" / "rules.md").read_text("utf-8")
    assert guide.count(f"{MAX_STEPS:,} items") == 2  # the Limits table and the macros


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999))
def test_string_of_a_timestamp_is_cels_rfc_3339_and_reads_back(ms: int) -> None:
    text = compile_expression("string(t)", {"t": TIMESTAMP}).evaluate({"t": ms})
    assert text.endswith("Z") and ".000" not in text
    back = compile_expression(f"timestamp('{text}')", {}).evaluate({})
    assert back == ms


@pytest.mark.parametrize(
    ("ms", "text"), [(1_209_600_000, "1209600s"), (1500, "1.5s"), (1, "0.001s"), (0, "0s")]
)
def test_string_of_a_duration_is_cels_seconds(ms: int, text: str) -> None:
    assert compile_expression("string(d)", {"d": DURATION}).evaluate({"d": ms}) == text

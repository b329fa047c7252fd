"""The expression language: what rule authors write, how it is typed, and that it never raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.durations import DAY_MS
from taggers.expr import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    FUNCTIONS,
    INT,
    METHODS,
    STRING,
    TIMESTAMP,
    ExprError,
    Type,
    compile_expression,
    list_of,
    map_of,
    object_of,
)

NAMES: dict[str, Type] = {
    "orders": INT,
    "spend": DOUBLE,
    "gap": DURATION,
    "last_at": TIMESTAMP,
    "joined_at": TIMESTAMP,
    "stage": STRING,
    "score": DYN,
    "event": object_of({"type": STRING, "props": map_of(DYN)}),
    "lists": object_of({"words": list_of(STRING)}),
    "min_silence": DURATION,
    "by_category": map_of(INT),
}
CONSTANTS: dict[str, Any] = {
    "lists": {"words": ("投诉", "举报", "骗子")},
    "min_silence": 14 * DAY_MS,
}


JUNE_18_SHANGHAI = 1_781_712_000_000
"""2026-06-18T00:00:00+08:00: in UTC (the default zone), Wednesday the 17th, 16:00."""


def evaluate(source: str, **values: Any) -> Any:
    compiled = compile_expression(source, NAMES, constants=CONSTANTS)
    return compiled.evaluate(values)


def error_of(source: str) -> ExprError:
    with pytest.raises(ExprError) as caught:
        compile_expression(source, NAMES, expect=BOOL, constants=CONSTANTS)
    return caught.value


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("orders >= 7 && spend > 100", {"orders": 7, "spend": 100.5}, True),
        ("orders >= 7 && spend > 100", {"orders": 6, "spend": 100.5}, False),
        ("orders < 2 || stage == 'loyal'", {"orders": 5, "stage": "loyal"}, True),
        ("!(orders > 1)", {"orders": 0}, True),
        ("stage in ['active', 'loyal']", {"stage": "active"}, True),
        ("stage in ['active', 'loyal']", {"stage": "new"}, False),
        ("orders * 2 + 1", {"orders": 3}, 7),
        ("orders / 2", {"orders": 7}, 3.5),
        ("orders % 3", {"orders": 7}, 1),
        ("-orders", {"orders": 3}, -3),
        ("orders > 3 ? 'many' : 'few'", {"orders": 5}, "many"),
        ("max(2 * gap, min_silence)", {"gap": 10 * DAY_MS}, 20 * DAY_MS),
        ("max(2 * gap, min_silence)", {"gap": None}, 14 * DAY_MS),
        ("gap / 1d", {"gap": 36 * 3_600_000}, 1.5),
        ("gap > 1d + 12h", {"gap": 2 * DAY_MS}, True),
        ("last_at - joined_at >= 7d", {"last_at": 8 * DAY_MS, "joined_at": 0}, True),
        ("last_at + 1d > joined_at", {"last_at": 0, "joined_at": DAY_MS}, False),
        (
            "contains_any(event.props.text, lists.words)",
            {"event": {"props": {"text": "我要投诉"}}},
            True,
        ),
        (
            "contains_any(event.props.text, lists.words)",
            {"event": {"props": {"text": "谢谢"}}},
            False,
        ),
        ("has(event.props.text)", {"event": {"props": {"text": "x"}}}, True),
        ("has(event.props.text)", {"event": {"props": {}}}, False),
        ("event.props.sku.startsWith('sku-')", {"event": {"props": {"sku": "sku-1"}}}, True),
        ("event.type.lower() == 'view'", {"event": {"type": "VIEW", "props": {}}}, True),
        ("size(lists.words)", {}, 3),
        ("lists.words[1]", {}, "举报"),
        ("int('42') + int(2.9)", {}, 44),
        ("double(orders) / 4", {"orders": 2}, 0.5),
        ("string(orders) + '单'", {"orders": 3}, "3单"),
        ("abs(-spend)", {"spend": 2.5}, 2.5),
        ("min(orders, 3, null)", {"orders": 5}, 3),
        ("'a\\'b' == \"a'b\"", {}, True),
    ],
)
def test_what_expressions_compute(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


CALL_EXAMPLES: dict[str, tuple[str, dict[str, Any], Any]] = {
    "abs": ("abs(gap - 2d)", {"gap": DAY_MS}, DAY_MS),
    "contains_any": ("contains_any(stage, ['oy', 'x'])", {"stage": "loyal"}, True),
    "date": ("date(last_at)", {"last_at": JUNE_18_SHANGHAI}, "2026-06-17"),
    "day": ("day(last_at)", {"last_at": JUNE_18_SHANGHAI}, 17),
    "day_of_week": ("day_of_week(last_at)", {"last_at": JUNE_18_SHANGHAI}, 3),
    "days_between": (
        "days_between(joined_at, last_at)",
        {"joined_at": JUNE_18_SHANGHAI - 3 * DAY_MS, "last_at": JUNE_18_SHANGHAI},
        3,
    ),
    "hour": ("hour(last_at)", {"last_at": JUNE_18_SHANGHAI}, 16),
    "month": ("month(last_at)", {"last_at": JUNE_18_SHANGHAI}, 6),
    "timestamp": (
        "timestamp('2026-06-18T00:00:00+08:00') - last_at",
        {"last_at": JUNE_18_SHANGHAI - DAY_MS},
        DAY_MS,
    ),
    "count_at_least": ("count_at_least(by_category, 2)", {"by_category": {"a": 2, "b": 1}}, 1),
    "get": ("get(by_category, 'c', 0)", {"by_category": {"a": 2}}, 0),
    "keys_at_least": (
        "keys_at_least(by_category, 2)",
        {"by_category": {"b": 2, "a": 3}},
        ("a", "b"),
    ),
    "top_key": ("top_key(by_category)", {"by_category": {"b": 2, "a": 2}}, "a"),
    "top_keys": ("top_keys(by_category, 1)", {"by_category": {"b": 3, "a": 2}}, ("b",)),
    "double": ("double('2.5') * 2", {}, 5.0),
    "excerpt": ("excerpt(stage, ['骗子'], 4)", {"stage": "你好啊你們是騙子吧"}, "…是騙子吧"),
    "has": ("has(event.props.sku)", {"event": {"props": {"sku": None}}}, False),
    "int": ("int(gap / 1h)", {"gap": 90 * 60_000}, 1),
    "matched_words": ("matched_words(stage, ['举报', '骗子'])", {"stage": "騙-子"}, ["骗子"]),
    "max": ("max(orders, 2, null)", {"orders": 1}, 2),
    "min": ("min(last_at, joined_at)", {"last_at": 5, "joined_at": 3}, 3),
    "size": ("size(stage)", {"stage": "loyal"}, 5),
    "string": ("string(orders > 1)", {"orders": 2}, "true"),
    ".contains": ("stage.contains('oya')", {"stage": "loyal"}, True),
    ".endsWith": ("stage.endsWith('yal')", {"stage": "loyal"}, True),
    ".lower": ("stage.lower()", {"stage": "LoYal"}, "loyal"),
    ".size": ("stage.size()", {"stage": "loyal"}, 5),
    ".startsWith": ("stage.startsWith('ya')", {"stage": "loyal"}, False),
    ".upper": ("stage.upper()", {"stage": "LoYal"}, "LOYAL"),
}
"""One example per function and per method (``.name``)."""


def test_every_function_and_method_has_an_example() -> None:
    assert set(CALL_EXAMPLES) == {*FUNCTIONS, *(f".{name}" for name in METHODS)}


@pytest.mark.parametrize("call", sorted(CALL_EXAMPLES))
def test_what_each_function_and_method_computes(call: str) -> None:
    source, values, expected = CALL_EXAMPLES[call]
    assert evaluate(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("orders + 1", {"orders": None}, None),  # null arithmetic gives null
        ("orders >= 1", {"orders": None}, False),  # ordering with null is false
        ("orders < 1", {"orders": None}, False),
        ("last_at == null", {"last_at": None}, True),
        ("last_at != null", {"last_at": 5}, True),
        ("!(orders >= 1)", {"orders": None}, True),
        ("score >= 9", {"score": "nine"}, False),  # a dyn of the wrong kind acts like null
        ("score + 1", {"score": "nine"}, None),
        ("orders / 0", {"orders": 3}, None),
        ("event.props.a.b", {"event": {"props": {"a": 5}}}, None),
        ("lists.words[9]", {}, None),
        ("size(score)", {"score": 7}, None),
        ("int(score)", {"score": "x"}, None),
        # Event data is dyn: a string or list times a number is null, not a repetition
        # (one event with a long string and a big number would take gigabytes), and a
        # string % a number is null, not printf formatting.
        ("event.props.q * 3", {"event": {"props": {"q": "ab"}}}, None),
        ("event.props.q * 1000000000", {"event": {"props": {"q": [1]}}}, None),
        ("3 * event.props.q", {"event": {"props": {"q": "ab"}}}, None),
        ("event.props.q % 5", {"event": {"props": {"q": "%0999999999d"}}}, None),
        ("event.props.q * 2", {"event": {"props": {"q": 1.5}}}, 3.0),
        ("event.props.q + 'b'", {"event": {"props": {"q": "a"}}}, "ab"),
    ],
)
def test_nulls_and_wrong_kinds_never_raise(
    source: str, values: dict[str, Any], expected: Any
) -> None:
    assert evaluate(source, **values) == expected


def test_reads_name_what_the_expression_depends_on() -> None:
    compiled = compile_expression("orders >= 7 && stage == 'loyal'", NAMES)
    assert compiled.reads == frozenset({"orders", "stage"})
    assert compiled.type == BOOL


def test_constants_are_folded_at_compile_time() -> None:
    compiled = compile_expression("max(2 * min_silence, 1d)", NAMES, constants=CONSTANTS)
    assert compiled.evaluate({}) == 28 * DAY_MS


@pytest.mark.parametrize(
    ("source", "offset", "message", "hint"),
    [
        ("oders >= 1", 0, "unknown name 'oders'", "did you mean 'orders'?"),
        ("orders >= 'x'", 7, "cannot compare int with string", "strings are quoted"),
        ("gap > 14", 4, "cannot compare duration with int", "durations are written with a unit"),
        ("orders = 1", 7, "unexpected character '='", "compare with =="),
        ("orders >= 1 and spend > 1", 12, "unexpected name 'and'", "write && instead of and"),
        ("orders >= 90x", 10, "bad number '90x'", "14d"),
        ("stage == 'loyal", 9, "unterminated string", "close it with '"),
        ("orders >=", 9, "unexpected end of expression", "a value is missing"),
        ("sizee(stage) > 1", 0, "unknown function 'sizee'", "did you mean 'size'?"),
        ("lists.wrods == null", 6, "unknown field 'wrods'", "did you mean 'words'?"),
        ("stage.lowr() == 'a'", 6, "unknown method 'lowr'", "did you mean 'lower'?"),
        ("orders", 0, "a condition must be true or false, but this is an int", "compare"),
        ("orders in 'abc'", 7, "cannot look for an int in a string", "`in` looks"),
        ("spend + stage > 1", 6, "cannot use + on double and string", "strings are quoted"),
        ("(orders > 1) + 1 > 0", 13, "cannot use + on bool and int", None),
        ("max(gap, 3) > 1d", 0, "max needs values of one kind", "14d"),
        ("orders > 1 ? 'a' : 2", 11, "both branches must have one type", None),
    ],
)
def test_mistakes_are_reported_where_they_are(
    source: str, offset: int, message: str, hint: str | None
) -> None:
    error = error_of(source)
    assert error.message.startswith(message)
    assert error.offset == offset
    if hint is None:
        assert error.hint is None
    else:
        assert error.hint is not None and hint in error.hint


def test_expected_duration() -> None:
    with pytest.raises(ExprError, match="expected a duration"):
        compile_expression("orders * 2", NAMES, expect=DURATION)


def test_no_python_escapes() -> None:
    """Rule text is never Python: dunder names and imports are just unknown names."""
    for source in ("__import__('os')", "orders.__class__", "().__class__"):
        with pytest.raises(ExprError):
            compile_expression(source, NAMES)


def test_limits_on_size_and_nesting() -> None:
    with pytest.raises(ExprError, match="longer than"):
        compile_expression("1 + " * 2000 + "1", NAMES)
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expression("(" * 80 + "1" + ")" * 80, NAMES)
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expression("!" * 80 + "true", NAMES)


@pytest.mark.parametrize(
    "source",
    [
        "orders" + " + 1" * 989 + " > 0",  # an operator chain: RecursionError before
        "event.props" + ".x" * 1899 + " == 1",  # a member chain: the same
        "orders" + " * 2" * 60 + " > 0",
        "max(" * 30 + "orders" + ")" * 30 + " + 1" * 30 + " > 0",
    ],
    ids=["990-terms", "1900-links", "61-products", "calls-and-operators"],
)
def test_operator_and_member_chains_count_as_nesting(source: str) -> None:
    with pytest.raises(ExprError, match="nested too deeply") as caught:
        compile_expression(source, NAMES)
    assert 0 <= caught.value.offset < len(source)


def test_an_expression_at_the_limits_compiles_and_evaluates() -> None:
    chain = compile_expression("orders" + " + 1" * 48 + " > 48", NAMES)  # 50 levels
    assert chain.evaluate({"orders": 1}) is True
    assert chain.evaluate({"orders": 0}) is False
    member = compile_expression("event.props" + ".x" * 47 + " == 1", NAMES)
    nested: Any = 1
    for _ in range(47):
        nested = {"x": nested}
    assert member.evaluate({"event": {"props": nested}}) is True


def test_an_expression_has_at_most_1000_parts() -> None:
    with pytest.raises(ExprError, match="more than 1000 parts"):
        compile_expression("size([" + ",".join(["1"] * 1000) + "]) > 0", NAMES)
    assert compile_expression("size([" + ",".join(["1"] * 990) + "]) > 0", NAMES).evaluate({})


def test_durations_are_bounded() -> None:
    with pytest.raises(ExprError, match="is too long"):
        compile_expression("gap > 1" + "0" * 400 + "d", NAMES)
    assert compile_expression("gap > 36500d", NAMES).evaluate({"gap": 36501 * DAY_MS})


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
DYN_NAMES: dict[str, Type] = {name: DYN for name in ("a", "b", "c")}
OPERATORS = ("+", "-", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", "in")


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(
            st.sampled_from(
                [
                    *("a", "b", "c", "1", "2.5", "'x'", "null", "true", "[1, 'x']", "7d"),
                    *("a.k", "b[0]", "v", "v.k"),  # v: a macro's item (else an unknown name)
                ]
            )
        )
    left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    form = draw(st.integers(0, 5))
    if form == 0:
        return f"({left} {draw(st.sampled_from(OPERATORS))} {right})"
    if form == 1:
        return f"{draw(st.sampled_from(['max', 'min']))}({left}, {right})"
    if form == 2:
        return f"{draw(st.sampled_from(['size', 'int', 'double', 'string', 'abs']))}({left})"
    if form == 3:
        return f"({left} ? {right} : {left})"
    if form == 4:
        macro = draw(st.sampled_from(["exists", "all", "exists_one", "filter", "map"]))
        return f"{left}.{macro}(v, {right})"
    return f"!{left}"


@settings(max_examples=400, deadline=None)
@given(expressions(), JSON, JSON, JSON)
def test_evaluation_never_raises(source: str, a: Any, b: Any, c: Any) -> None:
    """Whatever the data, a compiled expression gives a value (maybe null), never an error."""
    try:
        compiled = compile_expression(source, DYN_NAMES)
    except ExprError:
        return  # rejected at load time, with a message: fine
    compiled.evaluate({"a": a, "b": b, "c": c})


FRAGMENTS = (
    *("orders", "spend", "gap", "stage", "score", "event", "lists", "words", "props", "x"),
    *(".", "(", ")", "[", "]", ",", "?", ":", "!", "-", "+", "*", "/", "%", "==", "<", ">="),
    *("&&", "||", "in", "1", "0", "2.5", "1e308", "1e999", "99999999999999999999", "7d"),
    *("1.5h", "'a'", '"b"', "'\\u00e9'", "'\\q'", "'", "null", "true", "max", "size", "int"),
    *("abs", "has", "contains_any", "lower", "contains", " ", "#", "=", "&", "中", "٣", "²"),
    "9" * 300 + "d",
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_any_text_compiles_or_is_a_positioned_error(fragments: list[str]) -> None:
    """Rule text is whatever an author typed: an ExprError at a place in it, or an
    expression that evaluates without raising (found: a letter of another script, as
    in `中 > 1`, failed an assertion in the tokenizer)."""
    source = "".join(fragments) or "x"
    try:
        compiled = compile_expression(source, NAMES, constants=CONSTANTS)
    except ExprError as error:
        assert 0 <= error.offset <= len(source)
        return
    compiled.evaluate({name: None for name in NAMES})
    compiled.evaluate({**{name: None for name in NAMES}, "orders": 10**30, "score": [1]})

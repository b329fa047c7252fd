"""The fast path of decoding is the model, only faster.

For every message, ``decode_event`` (whose plain checks take the ordinary event) gives what
the pydantic model alone gives (``fast=False``): the same event, field by field and slot by
slot, with no difference between 1, 1.0 and True or between 0.0 and -0.0; or the same
EventError, reason and message. Checked over generated events of every type, near misses
of each thing the model checks (numbers at the edges, numeric text, odd ids, timestamps of
every form, missing and extra fields, nesting, wrong types), the simulated stream's lines
and mutations of them, and bytes that are not JSON or not UTF-8. And the fast path does
take the ordinary event: a test counts it over the whole simulated stream.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from taggers.event_values import MAX_TS_MS, MIN_TS_MS
from taggers.events import (
    EVENT_TYPES,
    IDENTIFY,
    MAX_AMOUNT,
    MAX_INTEGER,
    MAX_PROPS_DEPTH,
    MIN_INTEGER,
    EventError,
    decode_event,
    format_ts,
)
from taggers.fast_decode import MAX_DEPTH, PROPS_CHECKS, ordinary_event
from taggers.simulate import SimulationConfig, simulate
from tests.support.core import START_MS
from tests.support.raw_json import Raw, raw_json

TS = START_MS

# --- what "the same" means ------------------------------------------------------------------


def exact(value: object) -> object:
    """A form of a decoded value in which equal means identical: types kept (1, 1.0 and
    True differ), floats by their repr (0.0 and -0.0 differ), dicts in their order."""
    if isinstance(value, dict):
        return ("dict", [(key, exact(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [exact(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def outcome(
    raw: bytes | str, *, fast: bool = True, max_depth: int = MAX_PROPS_DEPTH
) -> tuple[object, ...]:
    """What decoding ``raw`` gives: the event, every slot of it, or the error."""
    try:
        event = decode_event(raw, fast=fast, max_depth=max_depth)
    except EventError as error:
        return ("error", type(error), error.reason, error.message)
    return (
        "event",
        type(event),
        exact(event.__dict__),
        event.model_fields_set,
        event.__pydantic_extra__,
        event.__pydantic_private__,
        event.model_dump_json(),
    )


def assert_alike(raw: bytes | str, max_depth: int = MAX_PROPS_DEPTH) -> None:
    fast = outcome(raw, max_depth=max_depth)
    assert fast == outcome(raw, fast=False, max_depth=max_depth), raw


# --- JSON text with the tokens json cannot write ---------------------------------------------


def dump(value: object, ascii_only: bool = False) -> bytes:
    """JSON of a value as bytes (see raw_json)."""
    return raw_json(value, ascii_only).encode()


# --- values: ordinary ones, and the edges of each thing the model checks ----------------------

KNOWN_TYPES = sorted(EVENT_TYPES)
TYPES = st.sampled_from([*KNOWN_TYPES, "custom", "live_stream_watch"])
ODD_TYPES = st.sampled_from(
    ["", "Purchase", "a-b", "9lives", "x" * 64, "x" * 65, "view ", "vïew", "view\n", 1, None]
)

TEXT = st.text(max_size=12)
GOOD_IDS = st.from_regex(r"[A-Za-z0-9_\-:.@ 中文é😀]{1,20}", fullmatch=True)
ODD_IDS: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=130),
    st.sampled_from(
        [
            "",
            "a" * 128,
            "a" * 129,
            "😀" * 128,
            "😀" * 129,
            "a{b",
            "a}b",
            "{}",
            "a\n",
            "\na",
            "a\x00",
            "a\x1f",
            "a\x7f",
            "a\x80",
            "\u2028",
            "\ufeff",
            " ",
            Raw('"\\ud800"'),
            Raw('"a\\u0000"'),
            Raw('"\\u007b"'),
            1,
            1.5,
            True,
            None,
            [],
            {},
        ]
    ),
)

_ZONES = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59)
)
ISO_TIMES = st.builds(
    lambda moment, spec: moment.isoformat(timespec=spec),
    st.datetimes(
        min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2), timezones=_ZONES
    ),
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds", "minutes"]),
)
GOOD_TS = st.one_of(st.integers(MIN_TS_MS, MAX_TS_MS - 1), ISO_TIMES, st.just(format_ts(TS)))
ODD_TS = st.one_of(
    st.integers(MIN_TS_MS - 10, MIN_TS_MS + 10),
    st.integers(MAX_TS_MS - 10, MAX_TS_MS + 10),
    st.builds(lambda moment: moment.isoformat(), st.datetimes()),  # no time zone
    st.datetimes(timezones=_ZONES).map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            TS // 1000,
            TS + 0.5,
            float(TS),
            -TS,
            0,
            True,
            None,
            2**63,
            2**64,
            MAX_INTEGER + 1,
            Raw("1e309"),
            Raw("-1e309"),
            Raw("NaN"),
            Raw("1.7672e12"),
            Raw("1767225600000.0"),
            str(TS),
            "2026-03-01 10:00:00",
            "2026-03-01",
            "2026-03-01T10:00:00+08:00",
            "2026-03-01T10:00:00.123456789Z",
            "20260301T100000Z",
            "2026-W09-7T10:00Z",
            "2026-03-01T24:00:00Z",
            "2026-02-30T10:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            " 2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00Z ",
            "1999-12-31T23:59:59.999Z",
            "2100-01-01T00:00:00Z",
            "",
            [TS],
            {"ms": TS},
        ]
    ),
)
EDGE_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        -1,
        9.0,
        9.5,
        10,
        11,
        MAX_AMOUNT,
        MAX_AMOUNT + 1,
        -MAX_AMOUNT,
        -MAX_AMOUNT - 1,
        MAX_AMOUNT + 0.5,
        MAX_INTEGER,
        MAX_INTEGER + 1,
        MIN_INTEGER,
        MIN_INTEGER - 1,
        2**63 - 1,
        2**63,
        2**53 + 1,
        9.3e18,
        1e19,
        -1e19,
        1e308,
        5e-324,
        10**30,
        Raw("1e309"),
        Raw("-1e309"),
        Raw("NaN"),
        Raw("Infinity"),
        Raw("-Infinity"),
        Raw("-0"),
        Raw("1E400"),
        Raw("1e-400"),
        Raw("18446744073709551616"),
        Raw("-9223372036854775809"),
        Raw("1" * 400),
        True,
        False,
        None,
        "1500.50",
        " 9 ",
        "9",
        "+5",
        "-5",
        "1e3",
        ".5",
        "5.",
        "inf",
        "nan",
        "0x10",
        "١٢",
        "1_000",
        "",
        "1" * 41,
        "1e400",
    ]
)
NUMBERS = st.one_of(
    EDGE_NUMBERS,
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and infinities too: json writes them as NaN, Infinity
    st.floats(0, MAX_AMOUNT),
    st.integers(0, 12),
)
PROP_NAMES = st.one_of(
    st.sampled_from(
        [
            "amount",
            "category",
            "sku",
            "order_id",
            "coupon_id",
            "expires_at",
            "points",
            "birthday",
            "group_id",
            "text",
            "sender_role",
            "invitee_id",
            "score",
            "store_id",
            "ids",
            "_x",
            "__dict__",
            "model_config",
        ]
    ),
    st.text(max_size=6),
)
SCALARS = st.one_of(NUMBERS, TEXT, ODD_IDS, st.booleans(), st.none())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PROP_NAMES, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int, leaf: object = 1) -> object:
    """``depth`` levels of objects around ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


DEEP = st.builds(nested, st.integers(0, 12), VALUES)

# --- well-formed events of every type -------------------------------------------------------


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


MONEY = st.one_of(
    st.floats(0, MAX_AMOUNT), st.integers(0, MAX_AMOUNT), st.sampled_from(["1500.50", "500"])
)
BIRTHDAYS = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    st.dates().map(lambda day: day.isoformat()[5:]),
    st.sampled_from(["02-29", "02-30", "13-01", "1990-1-1", "abcd"]),
)
GOOD_PROPS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "view": {"category": optional(TEXT), "sku": optional(TEXT)},
    "add_to_cart": {"category": optional(TEXT), "sku": optional(TEXT)},
    "purchase": {"amount": MONEY, "order_id": optional(TEXT), "category": optional(TEXT)},
    "refund": {"amount": MONEY, "order_id": optional(TEXT)},
    "coupon_issued": {"coupon_id": GOOD_IDS, "expires_at": GOOD_TS},
    "coupon_redeemed": {"coupon_id": GOOD_IDS},
    "points_earned": {
        "points": st.one_of(st.floats(-MAX_AMOUNT, MAX_AMOUNT), st.integers(-1000, 10**6))
    },
    "member_join": {"birthday": optional(BIRTHDAYS)},
    "group_join": {"group_id": optional(st.text(max_size=130))},
    "group_leave": {"group_id": optional(TEXT)},
    "message": {
        "text": st.text(max_size=40),
        "group_id": optional(TEXT),
        "sender_role": st.sampled_from([None, "customer", "staff", "Staff", "bot", 1]),
    },
    "share": {"sku": optional(TEXT)},
    "referral": {"invitee_id": GOOD_IDS},
    "survey": {"score": st.one_of(st.integers(0, 10), st.sampled_from(["9", " 7", "10"]))},
    "store_visit": {"store_id": optional(TEXT)},
    IDENTIFY: {"ids": st.lists(GOOD_IDS, min_size=1, max_size=3)},
}


@st.composite
def props_of(draw: st.DrawFn, type_: str) -> dict[str, Any]:
    """Props of ``type_``: each of its props mostly there, and others beside them."""
    props: dict[str, Any] = {}
    for name, strategy in GOOD_PROPS.get(type_, {}).items():
        if draw(st.integers(0, 9)) > 0:
            props[name] = draw(strategy)
    props |= draw(st.dictionaries(st.text(max_size=6), VALUES, max_size=2))
    return props


@st.composite
def good_events(draw: st.DrawFn) -> dict[str, Any]:
    type_ = draw(TYPES)
    event: dict[str, Any] = {
        "event_id": draw(GOOD_IDS),
        "user_id": draw(GOOD_IDS),
        "type": type_,
        "ts": draw(GOOD_TS),
    }
    if draw(st.booleans()):
        event["channel"] = draw(optional(st.text(max_size=66)))
    if draw(st.integers(0, 4)) > 0:
        event["props"] = draw(props_of(type_))
    return event


# --- near misses: one to three changes to a good event ----------------------------------------

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ODD_IDS,
    "user_id": ODD_IDS,
    "type": ODD_TYPES,
    "ts": ODD_TS,
    "channel": st.one_of(st.text(min_size=63, max_size=66), ODD_IDS, VALUES),
    "props": st.one_of(VALUES, DEEP),
}
PROP_VALUES = st.one_of(NUMBERS, ODD_IDS, ODD_TS, BIRTHDAYS, VALUES, DEEP)


@st.composite
def near_miss(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with one to three changes: a field or prop set to an edge value, one
    dropped, one added, a type swapped for another's props."""
    event = dict(event)
    for _ in range(draw(st.integers(1, 3))):
        change = draw(st.integers(0, 5))
        props = event.get("props")
        if change == 0:
            field = draw(st.sampled_from(sorted(FIELD_VALUES)))
            event[field] = draw(FIELD_VALUES[field])
        elif change == 1 and isinstance(props, dict):
            event["props"] = props | {draw(PROP_NAMES): draw(PROP_VALUES)}
        elif change == 2 and isinstance(props, dict) and props:
            dropped = draw(st.sampled_from(list(props)))
            event["props"] = {k: v for k, v in props.items() if k != dropped}
        elif change == 3 and event:
            del event[draw(st.sampled_from(sorted(event)))]
        elif change == 4:
            event[draw(st.sampled_from(["extra", "Type", "props ", "ts"]))] = draw(SCALARS)
        else:
            event["type"] = draw(TYPES)  # the props of one type under another
    return event


@settings(max_examples=400, deadline=None)
@given(good_events(), st.booleans())
@example(
    {"event_id": "e", "user_id": "u", "type": "purchase", "ts": TS, "props": {"amount": 0}}, False
)
@example(
    {"event_id": "e", "user_id": "u", "type": "purchase", "ts": TS, "props": {"amount": -0.0}},
    False,
)
@example(
    {"event_id": "e", "user_id": "u", "type": "survey", "ts": TS, "props": {"score": "9"}}, True
)
def test_well_formed_events_decode_as_the_model_decodes_them(
    event: dict[str, Any], ascii_only: bool
) -> None:
    assert_alike(dump(event, ascii_only))


@settings(max_examples=600, deadline=None)
@given(st.data(), st.booleans())
def test_near_misses_decode_or_fail_as_the_model_does(
    data: st.DataObject, ascii_only: bool
) -> None:
    event = data.draw(near_miss(data.draw(good_events())))
    assert_alike(dump(event, ascii_only))


@settings(max_examples=200, deadline=None)
@given(VALUES, st.sampled_from([0, 1, 2, MAX_PROPS_DEPTH, MAX_DEPTH, MAX_DEPTH + 1, 300]))
def test_any_props_under_any_depth_limit_decode_as_the_model_decodes_them(
    props: object, max_depth: int
) -> None:
    event = {"event_id": "e1", "user_id": "u1", "type": "custom", "ts": TS, "props": props}
    assert_alike(dump(event), max_depth)
    assert_alike(dump(event | {"props": nested(max_depth, props)}), max_depth)


@settings(max_examples=300, deadline=None)
@given(st.one_of(VALUES, st.binary(max_size=80), st.text(max_size=40)))
def test_any_json_value_or_bytes_decode_or_fail_as_the_model_does(value: object) -> None:
    if isinstance(value, bytes | str):
        assert_alike(value)  # mostly not JSON, or not UTF-8
    else:
        assert_alike(dump(value))


# --- one thing the model checks, at its edges -------------------------------------------------

NOT_TEXT = st.sampled_from([1, 1.5, True, False, None, [], {}, ["x"], {"x": 1}])


def texts_about(limit: int) -> st.SearchStrategy[Any]:
    """Text around ``limit`` characters long (two bytes each), or not text at all."""
    return st.one_of(st.integers(max(0, limit - 2), limit + 2).map(lambda n: "é" * n), NOT_TEXT)


OPTIONAL_TEXT_EDGES = st.one_of(TEXT, NOT_TEXT)
SITES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "*": {
        "event_id": ODD_IDS,
        "user_id": ODD_IDS,
        "type": ODD_TYPES,
        "ts": ODD_TS,
        "channel": texts_about(64),
        "props": st.one_of(VALUES, DEEP),
    },
    "view": {"category": OPTIONAL_TEXT_EDGES, "sku": OPTIONAL_TEXT_EDGES},
    "purchase": {
        "amount": NUMBERS,
        "order_id": OPTIONAL_TEXT_EDGES,
        "category": OPTIONAL_TEXT_EDGES,
    },
    "refund": {"amount": NUMBERS, "order_id": OPTIONAL_TEXT_EDGES},
    "coupon_issued": {"coupon_id": ODD_IDS, "expires_at": ODD_TS},
    "coupon_redeemed": {"coupon_id": ODD_IDS},
    "points_earned": {"points": NUMBERS},
    "member_join": {"birthday": st.one_of(BIRTHDAYS, NOT_TEXT)},
    "group_join": {"group_id": texts_about(128)},
    "message": {
        "text": texts_about(10_000),
        "group_id": texts_about(128),
        "sender_role": st.sampled_from(["customer", "staff", "Staff", "", "bot", None, 1]),
    },
    "share": {"sku": OPTIONAL_TEXT_EDGES},
    "referral": {"invitee_id": ODD_IDS},
    "survey": {"score": NUMBERS},
    "store_visit": {"store_id": OPTIONAL_TEXT_EDGES},
    IDENTIFY: {"ids": st.one_of(st.lists(ODD_IDS, max_size=3), VALUES)},
}
"""Where the model checks a value, by type ("*": every event's fields), and what to try."""
SITES["add_to_cart"] = SITES["view"]
SITES["group_leave"] = SITES["group_join"]


@st.composite
def one_site_off(draw: st.DrawFn) -> dict[str, Any]:
    """A good event with every prop of its type, and one field or prop at an edge."""
    type_ = draw(st.sampled_from(sorted(SITES)))
    props = {name: draw(strategy) for name, strategy in GOOD_PROPS.get(type_, {}).items()}
    event = {"event_id": "e1", "user_id": "u1", "type": type_, "ts": TS, "props": props}
    if type_ == "*":
        event["type"] = draw(TYPES)
        field = draw(st.sampled_from(sorted(SITES["*"])))
        return event | {field: draw(SITES["*"][field])}
    name = draw(st.sampled_from(sorted(SITES[type_])))
    return event | {"props": props | {name: draw(SITES[type_][name])}}


@settings(max_examples=1000, deadline=None)
@given(one_site_off())
def test_each_checked_value_at_its_edges_decodes_as_the_model_decodes_it(
    event: dict[str, Any],
) -> None:
    assert_alike(dump(event))


# --- the simulated stream, and mutations of its lines -----------------------------------------

STREAM_CONFIG = SimulationConfig(
    users=300, malformed=0.05, identities=0.2, forgets=0.05, opt_outs=0.1
)
STREAM = list(simulate(STREAM_CONFIG))
BYTE_EDITS = st.sampled_from(
    [b"", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x00", b"\n", b" ", b'"', b",", b"}", b"{", b"\\"]
)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A line of the simulated stream with bytes cut, inserted or changed, a duplicate
    field put in front, or (when it is JSON) a near miss of its event."""
    line = draw(st.sampled_from(STREAM)).encode()
    kind = draw(st.integers(0, 3))
    if kind == 0:
        try:
            event = json.loads(line)
        except ValueError:  # a malformed line of the stream
            return line
        if not isinstance(event, dict):
            return line
        return dump(draw(near_miss(event)), draw(st.booleans()))
    start = draw(st.integers(0, len(line)))
    end = draw(st.integers(start, min(len(line), start + 4)))
    if kind == 1:
        return line[:start] + draw(BYTE_EDITS) + line[end:]
    if kind == 2:
        return line[:start]  # truncated
    field = draw(st.sampled_from(['"event_id":"x"', '"ts":1', '"type":"view"', '"props":{}']))
    return b"{" + field.encode() + b"," + line[1:]


@settings(max_examples=600, deadline=None)
@given(mutated_lines())
@example(b'{"event_id":"e","event_id":"f","user_id":"u","type":"view","ts":1767225600000}')
@example(b'{"event_id":"e","user_id":"u","type":"custom","ts":1767225600000,"props":{"v":1,"v":2}}')
def test_mutations_of_the_streams_lines_decode_as_the_model_decodes_them(raw: bytes) -> None:
    assert_alike(raw)


def test_the_whole_simulated_stream_decodes_alike_and_mostly_by_the_fast_path() -> None:
    valid = identify = taken = 0
    for line in STREAM:
        model = outcome(line, fast=False)
        assert outcome(line) == model, line
        if model[0] == "event":
            valid += 1
            identify += '"type":"identify"' in line
            taken += ordinary_event(line.encode(), MAX_PROPS_DEPTH) is not None
    assert valid > 9000
    assert identify > 0
    # Every valid line but the identify events (which the model checks) is the fast path's.
    assert taken == valid - identify


# --- the fast path knows every type the model knows ------------------------------------------


def test_every_known_type_has_its_props_check() -> None:
    # A known type the fast path did not know would have its props taken unchecked.
    assert set(PROPS_CHECKS) == set(EVENT_TYPES)


def test_under_a_depth_limit_past_the_model_parsers_own_the_model_decides() -> None:
    raw = dump(
        {"event_id": "e1", "user_id": "u1", "type": "custom", "ts": TS, "props": nested(250)}
    )
    assert ordinary_event(raw, MAX_DEPTH + 1) is None
    assert outcome(raw, max_depth=1000) == (
        "error",
        EventError,
        "too_deep",
        "JSON nesting too deep",
    )
    assert outcome(raw, max_depth=1000, fast=False) == outcome(raw, max_depth=1000)

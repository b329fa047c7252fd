"""The event contract: valid events decode; bad input gets a precise error, never a crash."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.events import (
    EVENT_TYPES,
    FORGET,
    IDENTIFY,
    MAX_IDS_PER_EVENT,
    OPT_IN,
    OPT_OUT,
    REASONS,
    EventError,
    decode_event,
    event_json_schema,
)

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "type": "purchase",
    "ts": "2026-03-01T10:00:00+08:00",
    "channel": "mini_program",
    "props": {"amount": 199.0, "order_id": "o1", "category": "美妆"},
}


def encode(data: object) -> bytes:
    return orjson.dumps(data)


def test_a_valid_event_decodes_with_ts_in_epoch_ms() -> None:
    event = decode_event(encode(GOOD))
    assert event.ts == 1_772_330_400_000  # 2026-03-01T02:00:00Z
    assert event.props["category"] == "美妆"


def test_epoch_milliseconds_and_iso_give_the_same_time() -> None:
    iso = decode_event(encode(GOOD))
    millis = decode_event(encode(GOOD | {"ts": 1_772_330_400_000}))
    assert iso.ts == millis.ts


def test_unknown_types_are_accepted_with_any_props() -> None:
    event = decode_event(encode(GOOD | {"type": "live_stream_watch", "props": {"minutes": 12}}))
    assert event.type == "live_stream_watch"


def test_known_types_normalise_props() -> None:
    coupon = GOOD | {
        "type": "coupon_issued",
        "props": {"coupon_id": "c1", "expires_at": "2026-03-10T00:00:00Z"},
    }
    assert decode_event(encode(coupon)).props["expires_at"] == 1_773_100_800_000


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        (b'{"event_id": "e1",', "invalid_json", "EOF"),
        (b"\xff\xfe\x00", "not_utf8", "byte 0"),
        (b"[1, 2]", "invalid_json", "JSON object"),
        (encode({k: v for k, v in GOOD.items() if k != "user_id"}), "schema", "user_id"),
        (encode(GOOD | {"ts": "2026-03-01T10:00:00"}), "schema", "time zone"),
        (encode(GOOD | {"ts": 1_772_330_400}), "schema", "looks like seconds"),
        (encode(GOOD | {"ts": "yesterday"}), "schema", "ISO-8601"),
        (encode(GOOD | {"props": {"amount": "abc"}}), "schema", "amount"),
        (encode(GOOD | {"type": "survey", "props": {"score": 11}}), "schema", "score"),
        (encode(GOOD | {"user_id": 42}), "schema", "user_id"),
        (encode(GOOD | {"extra": 1}), "schema", "extra"),
        (encode(GOOD | {"type": "Bad Type"}), "schema", "type"),
        (encode(GOOD | {"props": {"note": "x" * 70_000}}), "too_large", "limit"),
        (b'{"props": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep", "deep"),
    ],
)
def test_bad_input_gets_a_precise_reason(raw: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(EventError) as caught:
        decode_event(raw)
    assert caught.value.reason == reason
    assert fragment in caught.value.message


def test_props_nested_past_the_limit_are_too_deep() -> None:
    nested: object = "leaf"
    for _ in range(12):
        nested = {"x": nested}
    with pytest.raises(EventError) as caught:
        decode_event(encode(GOOD | {"type": "custom", "props": nested}))
    assert caught.value.reason == "too_deep"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    try:
        decode_event(raw)
    except EventError as error:
        assert error.reason in REASONS


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*GOOD, "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
    )
)
def test_arbitrary_json_objects_never_crash(data: dict[str, object]) -> None:
    # json, not orjson: it writes NaN, Infinity and integers past 64 bits, as producers may.
    try:
        decode_event(json.dumps(data, allow_nan=True))
    except EventError as error:
        assert error.reason in REASONS


def test_json_schema_documents_every_known_type() -> None:
    schema = event_json_schema()
    assert set(schema["required"]) == {"event_id", "user_id", "type", "ts"}
    assert "amount" in schema["$defs"]["PurchaseProps"]["properties"]
    assert "score" in schema["$defs"]["SurveyProps"]["properties"]


# --- identity and consent events ------------------------------------------------------

IDENTIFY_EVENT = {"event_id": "e1", "user_id": "a", "type": "identify", "ts": 1_772_330_400_000}


def identify(ids: object, **more: object) -> bytes:
    return encode(IDENTIFY_EVENT | {"props": {"ids": ids}} | more)


def test_the_identity_and_consent_types_are_known_types() -> None:
    assert (IDENTIFY, FORGET, OPT_OUT, OPT_IN) == (
        "identify",
        "forget",
        "marketing_opt_out",
        "marketing_opt_in",
    )
    assert {IDENTIFY, FORGET, OPT_OUT, OPT_IN} <= set(EVENT_TYPES)
    assert "bad_identify" in REASONS
    for kind in (FORGET, OPT_OUT, OPT_IN):  # no props needed
        assert decode_event(encode(IDENTIFY_EVENT | {"type": kind})).type == kind


def test_identify_keeps_its_ids_in_order_without_duplicates() -> None:
    event = decode_event(identify(["wecom:wmXyz", "member:8812", "wecom:wmXyz"]))
    assert event.props["ids"] == ["wecom:wmXyz", "member:8812"]
    assert decode_event(identify(["b"] * MAX_IDS_PER_EVENT)).props["ids"] == ["b"]


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({}, "ids is required"),
        ({"ids": None}, "ids is required"),
        ({"ids": "b"}, "ids must be a list of ids, not a string"),
        ({"ids": {"b": 1}}, "ids must be a list of ids, not an object"),
        ({"ids": []}, "at least one"),
        ({"ids": ["b"] * (MAX_IDS_PER_EVENT + 1)}, f"33 entries, more than {MAX_IDS_PER_EVENT}"),
        ({"ids": ["b", 7]}, "ids[1] must be an id (a string), not a number"),
        ({"ids": [["b"]]}, "ids[0] must be an id (a string), not a list"),
        ({"ids": [True]}, "ids[0] must be an id (a string), not a boolean"),
        ({"ids": [None]}, "ids[0] must be an id (a string), not null"),
        ({"ids": [""]}, "ids[0] must be 1-128 characters, not 0"),
        ({"ids": ["x" * 129]}, "ids[0] must be 1-128 characters, not 129"),
        ({"ids": ["b", "c}d"]}, "ids[1] must not contain { or }"),
        ({"ids": ["{c"]}, "ids[0] must not contain { or }"),
        ({"ids": ["c\nd"]}, "ids[0] must not contain control characters"),
        ({"ids": ["c\n"]}, "ids[0] must not contain control characters"),
        ({"ids": ["c\x7f"]}, "ids[0] must not contain control characters"),
        ({"ids": ["b", "a"]}, "ids[1] is the event's own user_id"),
    ],
)
def test_a_bad_identify_is_a_dead_letter_naming_what_is_wrong(
    props: dict[str, object], fragment: str
) -> None:
    with pytest.raises(EventError) as caught:
        decode_event(encode(IDENTIFY_EVENT | {"props": props}))
    assert caught.value.reason == "bad_identify"
    assert caught.value.message.startswith("props of identify: ")
    assert fragment in caught.value.message
    assert "x" * 20 not in caught.value.message  # an id is personal data: never echoed


def test_an_invalid_event_under_identify_is_still_a_schema_error() -> None:
    with pytest.raises(EventError) as caught:
        decode_event(identify(["b"], user_id="a}"))
    assert caught.value.reason == "schema"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(
            st.one_of(st.text(max_size=130), st.sampled_from(["a", "b", "c"]), st.integers(0, 9)),
            max_size=MAX_IDS_PER_EVENT + 2,
        ),
        st.text(max_size=5),
        st.integers(0, 9),
        st.none(),
    )
)
def test_identify_either_links_valid_ids_or_is_a_bad_identify(ids: object) -> None:
    try:
        event = decode_event(identify(ids))
    except EventError as error:
        assert error.reason == "bad_identify", error
        return
    linked = event.props["ids"]
    assert isinstance(ids, list)
    assert linked == list(dict.fromkeys(ids))  # the producer's order, each id once
    assert 1 <= len(linked) <= MAX_IDS_PER_EVENT
    assert "a" not in linked
    for item in linked:
        assert isinstance(item, str) and 1 <= len(item) <= 128
        assert not any(c in "{}\x7f" or ord(c) < 32 for c in item)

"""The event contract: what producers put on ``behaviour-events``.

Producers send one JSON object per message, keyed by ``user_id``. ``decode_event`` turns
raw bytes into a validated ``BehaviourEvent`` or raises ``EventError`` with a bounded
``reason`` code (for the DLQ and metrics) and a precise, human-readable message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taggers import fast_decode
from taggers.calendars import is_birthday
from taggers.event_values import (
    EPOCH,
    ID_PATTERN,
    MAX_CHANNEL_LENGTH,
    MAX_GROUP_ID_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    NUMERIC,
    TYPE_PATTERN,
    to_number,
)

# Where the event contract has always offered them (they live in taggers.event_values, with
# no pydantic, so that the fast path reads values through the same code as the model).
from taggers.event_values import MAX_AMOUNT as MAX_AMOUNT  # noqa: PLC0414
from taggers.event_values import MAX_INTEGER as MAX_INTEGER  # noqa: PLC0414
from taggers.event_values import MIN_INTEGER as MIN_INTEGER  # noqa: PLC0414
from taggers.event_values import to_epoch_ms as to_epoch_ms  # noqa: PLC0414
from taggers.json_schema import identified

MAX_EVENT_BYTES: Final = 64 * 1024
MAX_PROPS_DEPTH: Final = 8
REASONS: Final = (
    "too_large",
    "not_utf8",
    "invalid_json",
    "too_deep",
    "schema",
    "bad_identify",
    "future",
)
"""Every value ``EventError.reason`` can take (a bounded label set for metrics); ``future``
is decided against when the event was sent (``taggers.clock``), not by ``decode_event``."""

# The event types of identity and consent (docs/identity.md), which the engine reads by name.
IDENTIFY: Final = "identify"
FORGET: Final = "forget"
OPT_OUT: Final = "marketing_opt_out"
OPT_IN: Final = "marketing_opt_in"
MAX_IDS_PER_EVENT: Final = 32
"""The most ids one ``identify`` event may name in ``props.ids``."""


@dataclass(frozen=True, slots=True)
class EventError(Exception):
    """A message that is not a valid event. ``reason`` is one of ``REASONS``."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _id_problem(value: object) -> str:
    """What is wrong with an id that does not match ``ID_PATTERN`` (never the id itself)."""
    if isinstance(value, str) and ("{" in value or "}" in value):
        return "must not contain { or } (ids are Redis Cluster hash tags)"
    return "must not contain control characters"


def format_ts(ms: int, tz: tzinfo = UTC) -> str:
    """Epoch ms as an ISO-8601 string with milliseconds, in ``tz`` (UTC: ending in ``Z``),
    for output events and people. Exact: ``to_epoch_ms`` gives back the same ms."""
    return (
        (EPOCH + timedelta(milliseconds=ms))
        .astimezone(tz)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


_TS_SCHEMA: Final = {
    "anyOf": [
        {
            "type": "string",
            "format": "date-time",
            # A date, a time, and a time zone at the end (Z or an offset): what
            # to_epoch_ms accepts; a validator without format checks still sees the zone.
            "pattern": r"^\d{4}[^T ]*[T ].*(Z|[+-]\d{2}(:?\d{2}(:?\d{2}(\.\d+)?)?)?)$",
            "description": "ISO-8601 with a time zone",
        },
        {
            "type": "integer",
            "minimum": MIN_TS_MS,
            "exclusiveMaximum": MAX_TS_MS,
            "description": "epoch milliseconds (2000-01-01 to 2100-01-01)",
        },
    ]
}
Timestamp = Annotated[int, BeforeValidator(to_epoch_ms), WithJsonSchema(_TS_SCHEMA)]
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
"""An id: 1-128 characters, no braces (a user id is the Redis Cluster hash tag of its
keys) and no control characters."""


def _numeric_schema(
    low: int, high: int, number: str = "number", example: str = "1500.50"
) -> WithJsonSchema:
    """The JSON Schema of a numeric prop: a number in range, or numeric text."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": number, "minimum": low, "maximum": high},
                {"type": "string", "pattern": f"^\\s*{NUMERIC.pattern}\\s*$"},
            ],
            "description": f'{number} from {low:,} to {high:,}, or as text ("{example}")',
        }
    )


Number = Annotated[
    float,
    BeforeValidator(to_number),
    Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT),
    _numeric_schema(-MAX_AMOUNT, MAX_AMOUNT),
]
Money = Annotated[
    float,
    BeforeValidator(to_number),
    Field(ge=0, le=MAX_AMOUNT),
    _numeric_schema(0, MAX_AMOUNT),
]


class _Props(BaseModel):
    model_config = ConfigDict(extra="allow")


class ViewProps(_Props):
    category: str | None = None
    sku: str | None = None


class PurchaseProps(_Props):
    amount: Money
    order_id: str | None = None
    category: str | None = None


class RefundProps(_Props):
    amount: Money
    order_id: str | None = None


class CouponIssuedProps(_Props):
    coupon_id: Id
    expires_at: Timestamp


class CouponRedeemedProps(_Props):
    coupon_id: Id


class PointsEarnedProps(_Props):
    points: Number


GroupId = Annotated[str, Field(max_length=MAX_GROUP_ID_LENGTH)]


class GroupProps(_Props):
    group_id: GroupId | None = None


class MessageProps(_Props):
    text: Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
    group_id: GroupId | None = None
    # Who sent it: the customer, or the brand's staff (a guide) in the same chat or
    # group, whose words are the brand's (alerts tell the two apart).
    sender_role: Literal["customer", "staff"] | None = Field(
        default=None, description="customer (the default) or staff"
    )


class ShareProps(_Props):
    sku: str | None = None


def _birthday(value: str | None) -> str | None:
    if value is not None and not is_birthday(value):
        raise ValueError(f"not a birthday: {value[:20]!r} (write YYYY-MM-DD or MM-DD)")
    return value


class MemberJoinProps(_Props):
    birthday: Annotated[
        str | None,
        AfterValidator(_birthday),
        Field(description="YYYY-MM-DD or MM-DD (a yearly calendar trigger reads it)"),
    ] = None


class ReferralProps(_Props):
    invitee_id: Id


class SurveyProps(_Props):
    score: Annotated[
        int, BeforeValidator(to_number), Field(ge=0, le=10), _numeric_schema(0, 10, "integer", "9")
    ]


class StoreVisitProps(_Props):
    store_id: str | None = None


class IdentifyProps(_Props):
    # Checked against the event's user_id by BehaviourEvent (a bad_identify dead letter).
    ids: list[Id] = Field(
        min_length=1,
        max_length=MAX_IDS_PER_EVENT,
        description=f"the person's other ids, 1 to {MAX_IDS_PER_EVENT}, none the user_id",
    )


EVENT_TYPES: Final[dict[str, tuple[type[_Props], str]]] = {
    "view": (ViewProps, "viewed a product page"),
    "add_to_cart": (ViewProps, "added a product to the cart"),
    "purchase": (PurchaseProps, "paid an order"),
    "refund": (RefundProps, "got money back for an order"),
    "coupon_issued": (CouponIssuedProps, "received a coupon that expires at expires_at"),
    "coupon_redeemed": (CouponRedeemedProps, "used a coupon"),
    "check_in": (_Props, "checked in (daily sign-in)"),
    "points_earned": (PointsEarnedProps, "earned loyalty points"),
    "member_join": (MemberJoinProps, "joined the membership programme"),
    "friend_add": (_Props, "added the brand's WeCom account as a friend"),
    "friend_delete": (_Props, "deleted the brand's WeCom account"),
    "group_join": (GroupProps, "joined a WeCom group"),
    "group_leave": (GroupProps, "left a WeCom group"),
    "message": (MessageProps, "sent a message in a group or chat"),
    "share": (ShareProps, "shared a product or article"),
    "referral": (ReferralProps, "referred a new user"),
    "survey": (SurveyProps, "answered the NPS survey (score 0-10)"),
    "store_visit": (StoreVisitProps, "visited a physical store"),
    IDENTIFY: (IdentifyProps, "showed that props.ids are the same person (links them)"),
    FORGET: (_Props, "asked to be forgotten: the person and all its ids are deleted"),
    OPT_OUT: (_Props, "opted out of marketing: the person's alerts are held back"),
    OPT_IN: (_Props, "opted in to marketing again"),
}
"""Known event types: props model and meaning. Other types are accepted as they are."""

_CONVERTED_PROPS: Final = {
    name: tuple(
        field
        for field, info in model.model_fields.items()
        if any(
            isinstance(m, BeforeValidator) and m.func in (to_epoch_ms, to_number)
            for m in info.metadata
        )
    )
    for name, (model, _) in EVENT_TYPES.items()
}
"""The props of each known type that validation converts (timestamps, numbers)."""

_ID_RE: Final = re.compile(ID_PATTERN)


def identify_ids(ids: object, user_id: str) -> list[str]:
    """The ids an ``identify`` event under ``user_id`` links, from its ``props.ids``:
    duplicates dropped, keeping the first of each. Raises ValueError saying what is wrong
    (not a list, none or more than ``MAX_IDS_PER_EVENT``, an entry that is not a valid id,
    the event's own ``user_id``); never echoes an id, which is personal data."""
    if ids is None:
        raise ValueError("ids is required: a list of the person's other ids")
    if not isinstance(ids, list):
        raise ValueError(f"ids must be a list of ids, not {_json_type(ids)}")
    if not ids:
        raise ValueError("ids must name at least one other id")
    if len(ids) > MAX_IDS_PER_EVENT:
        raise ValueError(f"ids has {len(ids)} entries, more than {MAX_IDS_PER_EVENT}")
    for index, item in enumerate(ids):
        problem = _linked_id_problem(item, user_id)
        if problem is not None:
            raise ValueError(f"ids[{index}] {problem}")
    return list(dict.fromkeys(ids))


def _linked_id_problem(item: object, user_id: str) -> str | None:
    if not isinstance(item, str):
        return f"must be an id (a string), not {_json_type(item)}"
    if not 1 <= len(item) <= MAX_ID_LENGTH:
        return f"must be 1-{MAX_ID_LENGTH} characters, not {len(item)}"
    if not _ID_RE.fullmatch(item):  # match's $ would let a final newline through
        return _id_problem(item)
    if item == user_id:
        return "is the event's own user_id (list the person's other ids)"
    return None


def _json_type(value: object) -> str:
    """What a JSON value is, as JSON names it."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


CHANNELS: Final = ("wecom", "official_account", "mini_program", "app", "store", "sms")


class BehaviourEvent(BaseModel):
    """One thing a user did. ``ts`` is held as epoch milliseconds."""

    model_config = ConfigDict(
        extra="forbid",
        title="BehaviourEvent",
        json_schema_extra={"description": "A user's behaviour event (key = user_id)."},
    )

    event_id: Id = Field(description="Unique per event; producers' retries reuse it")
    user_id: Id
    type: Annotated[str, Field(pattern=TYPE_PATTERN)] = Field(
        description="Event type: " + ", ".join(EVENT_TYPES) + "; other types are accepted"
    )
    ts: Timestamp = Field(description="When it happened")
    channel: Annotated[str, Field(max_length=MAX_CHANNEL_LENGTH)] | None = Field(
        default=None, description="Where: " + ", ".join(CHANNELS) + ", ..."
    )
    props: dict[str, Any] = Field(default_factory=dict, description="Type-specific details")

    @model_validator(mode="after")
    def _check_props(self) -> BehaviourEvent:
        if self.type == IDENTIFY:
            try:
                self.props["ids"] = identify_ids(self.props.get("ids"), self.user_id)
            except ValueError as problem:
                # Its own error type, so that decode_event gives it its own reason.
                raise PydanticCustomError(
                    "bad_identify", "props of identify: {problem}", {"problem": str(problem)}
                ) from None
            return self
        known = EVENT_TYPES.get(self.type)
        if known is not None and known[0] is not _Props:
            try:
                checked = known[0].model_validate(self.props)
            except ValidationError as error:
                raise ValueError(_describe(error, prefix=f"props of {self.type}: ")) from None
            # Keep the producer's props, but those that validation converts are what was
            # validated (a timestamp as epoch ms, "1500.50" as 1500.5): rules read what
            # was accepted.
            for name in _CONVERTED_PROPS[self.type]:
                if name in self.props:
                    self.props[name] = getattr(checked, name)
        return self


def _props_problem(
    value: dict[str, Any] | list[Any], path: str, depth: int, max_depth: int
) -> EventError | None:
    """Props nested deeper than ``max_depth``, or holding a number the profile store cannot
    write exactly (NaN, an infinity, an integer past 64 bits): the error, naming the prop.
    ``value`` is a dict or a list, ``depth`` its level (props themselves are level 1)."""
    if depth > max_depth:
        return EventError("too_deep", f"props nest deeper than {max_depth} levels")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        # The usual values (text, ordinary numbers) cost one type test each.
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is float:
            if math.isfinite(item):
                continue
            problem = f"{item} is not a finite number"
        elif kind is int:
            if MIN_INTEGER <= item <= MAX_INTEGER:
                continue
            problem = "an integer outside the 64-bit range"
        else:
            problem = None
        step = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key[:40]}"
        if problem is not None:
            return EventError("schema", f"{step}: {problem}")
        if kind is dict or kind is list:
            found = _props_problem(item, step, depth + 1, max_depth)
            if found is not None:
                return found
    return None


def _describe(error: ValidationError, prefix: str = "") -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if (
            item["type"] == "string_pattern_mismatch"
            and item.get("ctx", {}).get("pattern") == ID_PATTERN
        ):
            message = _id_problem(item["input"])
        parts.append(f"{prefix}{loc}: {message}" if loc else f"{prefix}{message}")
    return "; ".join(parts)


def decode_event(
    raw: bytes | str,
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    max_depth: int = MAX_PROPS_DEPTH,
    fast: bool = True,
) -> BehaviourEvent:
    """Decode one message into an event, or raise EventError saying precisely what is wrong.

    An ordinary event is taken by the plain checks of ``taggers.fast_decode``; whatever they
    decline, the model decides, so every error is the model's. ``fast=False`` has the model
    decide every message (the reference the fast path is tested and measured against).

    Never raises anything else: whatever goes wrong while decoding one message is that
    message's error, so that it cannot stop a partition."""
    try:
        return _decode(raw, max_bytes, max_depth, fast)
    except EventError:
        raise
    except Exception as error:  # a case no check foresaw: still this message's dead letter
        raise EventError("schema", f"cannot be decoded ({type(error).__name__})") from None


def _decode(raw: bytes | str, max_bytes: int, max_depth: int, fast: bool) -> BehaviourEvent:
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError as bad:
            raise EventError("not_utf8", f"not UTF-8 at character {bad.start}") from None
    data = raw
    if len(data) > max_bytes:
        raise EventError("too_large", f"{len(data)} bytes is over the limit of {max_bytes}")
    if fast:
        found = fast_decode.ordinary_event(data, max_depth)
        if found is not None:
            return _built(*found)
    return _validated(data, max_depth)


def _built(fields: dict[str, Any], given: set[str]) -> BehaviourEvent:
    """The event of fields the fast path validated, as the model would have built it.

    What ``BaseModel.model_construct`` does, without its walk over fields, aliases and
    defaults, which costs as much as the rest of the fast path: ``fields`` are complete, in
    the model's order (the test of the fast path compares every slot with the model's)."""
    event = BehaviourEvent.__new__(BehaviourEvent)
    object.__setattr__(event, "__dict__", fields)
    object.__setattr__(event, "__pydantic_fields_set__", given)
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event


def _validated(data: bytes, max_depth: int) -> BehaviourEvent:
    """The event of ``data`` as the pydantic model decides it, or its EventError."""
    try:
        event = BehaviourEvent.model_validate_json(data)
    except ValidationError as error:
        kinds = {item["type"] for item in error.errors()}
        if "json_invalid" in kinds:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise EventError("not_utf8", f"not UTF-8 at byte {bad.start}") from None
            if any("recursion" in str(item["msg"]) for item in error.errors()):
                raise EventError("too_deep", "JSON nesting too deep") from None
            raise EventError("invalid_json", _describe(error)) from None
        if "model_type" in kinds and not data.lstrip().startswith(b"{"):
            raise EventError("invalid_json", "an event must be a JSON object") from None
        if kinds == {"bad_identify"}:
            raise EventError("bad_identify", _describe(error)) from None
        raise EventError("schema", _describe(error)) from None
    problem = _props_problem(event.props, "props", 1, max_depth) if event.props else None
    if problem is not None:
        raise problem
    return event


def forget_event(user_id: str, ts: int, event_id: str) -> bytes:
    """The ``forget`` event of ``user_id`` at ``ts`` (epoch ms) as its message value (what
    ``tagger forget`` sends); EventError (``schema``) naming what is wrong with an id."""
    data = {"event_id": event_id, "user_id": user_id, "type": FORGET, "ts": ts}
    try:
        event = BehaviourEvent.model_validate(data)
        return event.model_dump_json(exclude={"props", "channel"}).encode()
    except ValidationError as error:
        raise EventError("schema", _describe(error)) from None


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of BehaviourEvent (``tagger schema events``), each known type's props
    checked by an ``if``/``then`` on its ``type``, so that a stock validator checks them.

    What no schema says, the decoder still checks: bounds of the whole message and of
    its nesting, times outside 2000..2100, an ``identify`` naming its own ``user_id``."""
    schema = BehaviourEvent.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})
    by_type = []
    for name, (model, meaning) in EVENT_TYPES.items():
        then: dict[str, Any] = {"description": f"{name}: {meaning}"}
        if model is not _Props:  # a type whose props are checked
            props = model.model_json_schema()
            defs |= props.pop("$defs", {})
            defs[model.__name__] = props
            then["properties"] = {"props": {"$ref": f"#/$defs/{model.__name__}"}}
            if props.get("required"):  # without props, the props {} lack them
                then["required"] = ["props"]
        if_type = {"properties": {"type": {"const": name}}, "required": ["type"]}
        by_type.append({"if": if_type, "then": then})
    schema["allOf"] = by_type
    schema["$defs"] = defs
    return identified("events", schema)

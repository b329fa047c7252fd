"""The fast path of ``decode_event``: orjson and plain checks that accept an ordinary event.

Most messages are ordinary: the fields of the contract and no others, ids and a type as
the contract spells them, a timestamp ``to_epoch_ms`` reads, props of text and ordinary
numbers, and a known type's props as its model wants them. For such a message
``ordinary_event`` gives the very fields the pydantic model (``taggers.events``) would give,
for a fraction of its cost. Anything else, valid or not, it declines (None), and the model
decides: so every error, with its reason and message, stays the model's own. When in
doubt, decline: declining costs only time, accepting wrongly would change an event.

No pydantic here, so that mypyc can compile the module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from taggers.calendars import is_birthday
from taggers.event_values import (
    ID_PATTERN,
    MAX_AMOUNT,
    MAX_CHANNEL_LENGTH,
    MAX_GROUP_ID_LENGTH,
    MAX_ID_LENGTH,
    MAX_INTEGER,
    MAX_TEXT_LENGTH,
    MAX_TS_MS,
    MIN_INTEGER,
    MIN_TS_MS,
    TYPE_PATTERN,
    to_epoch_ms,
    to_number,
)

FIELDS: Final = frozenset({"event_id", "user_id", "type", "ts", "channel", "props"})
"""The fields of an event (the model forbids any other)."""
REQUIRED: Final = frozenset({"event_id", "user_id", "type", "ts"})

MAX_DEPTH: Final = 64
"""The deepest props limit the fast path works under. The model's JSON parser refuses
nesting past 200 levels, orjson only past 1024: under a larger limit the model decides."""

# orjson reads an integer past 64 bits as a float, the model's parser as the integer (which
# it rejects: the store cannot write it). A float this large may be such an integer.
_LARGEST_PLAIN_FLOAT: Final = 2.0**63

SENDER_ROLES: Final = ("customer", "staff")
"""The ``sender_role`` values of a ``message`` (the model's Literal)."""

# Whole-string matches: ``fullmatch`` does not let ``$`` match before a final newline.
_ID: Final = re.compile(ID_PATTERN)
_TYPE: Final = re.compile(TYPE_PATTERN)

Props = dict[str, Any]


def ordinary_event(data: bytes, max_depth: int) -> tuple[dict[str, Any], set[str]] | None:
    """The fields of the event in ``data`` as the model validates them, in its field order
    with its defaults, and the names of the fields the message gave (the model's fields
    set); None when ``data`` is not an ordinary event (the model decides then).

    ``data`` is within the size limit already; ``max_depth`` is the props nesting limit."""
    if max_depth > MAX_DEPTH:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(parsed) is not dict:
        return None
    given = parsed.keys()
    if not (given <= FIELDS and given >= REQUIRED):
        return None
    event_id, user_id, type_ = parsed["event_id"], parsed["user_id"], parsed["type"]
    if not (is_id(event_id) and is_id(user_id) and _is_type(type_)):
        return None
    ts = _epoch_ms(parsed["ts"])
    channel = parsed.get("channel")
    if ts is None or not _is_optional_text(channel, MAX_CHANNEL_LENGTH):
        return None
    props = parsed.get("props", {})
    if type(props) is not dict or (props and not plain_props(props, 1, max_depth)):
        return None
    if not PROPS_CHECKS.get(type_, _no_check)(props):
        return None
    fields = {
        "event_id": event_id,
        "user_id": user_id,
        "type": type_,
        "ts": ts,
        "channel": channel,
        "props": props,
    }
    return fields, set(given)


def is_id(value: object) -> bool:
    """An id as the model's ``Id`` takes it: text of 1-128 characters with no braces and no
    control characters."""
    return (
        type(value) is str and 1 <= len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value) is not None
    )


def _is_type(value: object) -> bool:
    return type(value) is str and _TYPE.fullmatch(value) is not None


def _is_optional_text(value: object, max_length: int | None = None) -> bool:
    return value is None or (
        type(value) is str and (max_length is None or len(value) <= max_length)
    )


def _epoch_ms(value: object) -> int | None:
    """``value`` as epoch ms when it is epoch ms in range or text that ``to_epoch_ms``
    accepts (the model reads it with the same function); None otherwise. A float declines:
    rare, and orjson and the model's parser read an integer past 64 bits differently."""
    if type(value) is int:
        return value if MIN_TS_MS <= value < MAX_TS_MS else None
    if type(value) is not str:
        return None
    try:
        return to_epoch_ms(value)
    except ValueError:
        return None


def plain_props(value: dict[str, Any] | list[Any], depth: int, max_depth: int) -> bool:
    """Whether props (``depth`` 1), or a list or object in them at ``depth``, hold nothing
    but text, booleans, null, integers the store writes exactly, floats below 2**63 in
    magnitude, and lists and objects of those no deeper than ``max_depth``: what the model
    accepts as it is. Anything else (a non-finite number, a huge integer read as a float,
    props too deep) is for the model to decide, and mostly to reject."""
    if depth > max_depth:
        return False
    for item in value.values() if isinstance(value, dict) else value:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is float:
            if not -_LARGEST_PLAIN_FLOAT < item < _LARGEST_PLAIN_FLOAT:
                return False
        elif kind is int:
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                return False
        elif kind is dict or kind is list:
            if not plain_props(item, depth + 1, max_depth):
                return False
        else:
            return False
    return True


# --- the props of the known types -------------------------------------------------------
# Each check is the plain form of the type's props model in taggers.events: True when the
# model accepts the props, with the converted values (numbers, timestamps) set as the model
# sets them; False (decline) otherwise. Other props are kept as they were sent, as the
# model keeps them.


def _no_check(props: Props) -> bool:
    return True


def _decline(props: Props) -> bool:
    """For a type the model checks against more than its props (``identify``: its ids
    against the user_id), and which is rare: the model decides."""
    return False


def _text(props: Props, name: str, max_length: int | None = None) -> bool:
    """An optional text prop: absent, null or text (of at most ``max_length`` characters)."""
    return _is_optional_text(props.get(name), max_length)


def _converted_number(props: Props, name: str, low: float) -> bool:
    """A required number (or numeric text) from ``low`` to ``MAX_AMOUNT``, set as the float
    the model's float field makes of it (an integer too)."""
    try:
        number = to_number(props.get(name))
    except ValueError:
        return False
    if number < low:
        return False
    props[name] = float(number)
    return True


def _view(props: Props) -> bool:
    return _text(props, "category") and _text(props, "sku")


def _purchase(props: Props) -> bool:
    return (
        _converted_number(props, "amount", 0)
        and _text(props, "order_id")
        and _text(props, "category")
    )


def _refund(props: Props) -> bool:
    return _converted_number(props, "amount", 0) and _text(props, "order_id")


def _coupon_issued(props: Props) -> bool:
    if not is_id(props.get("coupon_id")):
        return False
    expires_at = _epoch_ms(props.get("expires_at"))
    if expires_at is None:
        return False
    props["expires_at"] = expires_at
    return True


def _coupon_redeemed(props: Props) -> bool:
    return is_id(props.get("coupon_id"))


def _points_earned(props: Props) -> bool:
    return _converted_number(props, "points", -MAX_AMOUNT)


def _group(props: Props) -> bool:
    return _text(props, "group_id", MAX_GROUP_ID_LENGTH)


def _message(props: Props) -> bool:
    text = props.get("text")
    role = props.get("sender_role")
    return (
        type(text) is str
        and len(text) <= MAX_TEXT_LENGTH
        and _text(props, "group_id", MAX_GROUP_ID_LENGTH)
        and (role is None or (type(role) is str and role in SENDER_ROLES))
    )


def _share(props: Props) -> bool:
    return _text(props, "sku")


def _member_join(props: Props) -> bool:
    birthday = props.get("birthday")
    return birthday is None or (type(birthday) is str and is_birthday(birthday))


def _referral(props: Props) -> bool:
    return is_id(props.get("invitee_id"))


def _survey(props: Props) -> bool:
    """A score from 0 to 10, as a whole number or its text; the model's int field takes a
    float with no fraction too (rare: declined)."""
    try:
        score = to_number(props.get("score"))
    except ValueError:
        return False
    if type(score) is not int or not 0 <= score <= 10:
        return False
    props["score"] = score
    return True


def _store_visit(props: Props) -> bool:
    return _text(props, "store_id")


PROPS_CHECKS: Final[dict[str, Callable[[Props], bool]]] = {
    "view": _view,
    "add_to_cart": _view,
    "purchase": _purchase,
    "refund": _refund,
    "coupon_issued": _coupon_issued,
    "coupon_redeemed": _coupon_redeemed,
    "check_in": _no_check,
    "points_earned": _points_earned,
    "member_join": _member_join,
    "friend_add": _no_check,
    "friend_delete": _no_check,
    "group_join": _group,
    "group_leave": _group,
    "message": _message,
    "share": _share,
    "referral": _referral,
    "survey": _survey,
    "store_visit": _store_visit,
    "identify": _decline,
    "forget": _no_check,
    "marketing_opt_out": _no_check,
    "marketing_opt_in": _no_check,
}
"""The props check of every known type (``taggers.events.EVENT_TYPES``, which a test holds
this to); a type not named here has props as they are sent."""

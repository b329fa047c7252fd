"""What the engine emits: tag changes, lifecycle transitions and alerts.

Every output carries a deterministic ``id`` derived from its cause (user, rule, the event
or timer deadline that caused it), so a subscriber can drop duplicates after a replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from taggers.events import format_ts


@dataclass(frozen=True, slots=True)
class Reason:
    """Why something happened: the rule, the rule-set version and the values it read."""

    rule: str
    version: str
    values: dict[str, Any]
    note: str = ""


@dataclass(frozen=True, slots=True)
class TagChange:
    """A tag added to or removed from a user."""

    id: str
    user_id: str
    tag: str
    op: Literal["add", "remove"]
    display: str | None
    at: int
    reason: Reason
    kind: Literal["tag_change"] = "tag_change"


@dataclass(frozen=True, slots=True)
class Transition:
    """A user moved from one lifecycle stage to another (``from_stage`` None: first seen)."""

    id: str
    user_id: str
    from_stage: str | None
    to_stage: str
    at: int
    reason: Reason
    kind: Literal["transition"] = "transition"


@dataclass(frozen=True, slots=True)
class Alert:
    """A signal that needs action now."""

    id: str
    user_id: str
    name: str
    severity: str
    display: str | None
    at: int
    details: dict[str, Any]
    reason: Reason
    kind: Literal["alert"] = "alert"


Output = TagChange | Transition | Alert


def output_id(user_id: str, cause: str, version: str, *parts: str) -> str:
    """A stable id for an output: the same user, cause (event or deadline), rule-set version
    and rule parts give the same id; a new rule-set version gives new ids."""
    text = "\x1f".join((user_id, cause, version, *parts))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _reason(reason: Reason) -> dict[str, Any]:
    data: dict[str, Any] = {"rule": reason.rule, "version": reason.version, "values": reason.values}
    if reason.note:
        data["note"] = reason.note
    return data


def output_to_dict(output: Output) -> dict[str, Any]:
    """The JSON form of an output, as written to topics and by ``tagger replay --json``."""
    data: dict[str, Any] = {"kind": output.kind, "id": output.id, "user_id": output.user_id}
    if isinstance(output, TagChange):
        data |= {"tag": output.tag, "op": output.op, "display": output.display}
    elif isinstance(output, Transition):
        data |= {"from": output.from_stage, "to": output.to_stage}
    else:
        data |= {
            "name": output.name,
            "severity": output.severity,
            "display": output.display,
            "details": output.details,
        }
    data["at"] = format_ts(output.at)
    data["reason"] = _reason(output.reason)
    return data

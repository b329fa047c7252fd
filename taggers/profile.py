"""A user's profile: everything the engine keeps about one user, as JSON-native data."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final, TypedDict

RECENT_EVENT_IDS: Final = 32  # a retry comes soon after the original: 32 ids is ample


class TagRecord(TypedDict):
    """Why and since when a user holds a tag, as the profile stores it (JSON as it is:
    a stored profile's record is read back as the same dict).

    ``rule`` is the tag rule that decided it (a family's member names its family),
    ``version`` the rule set's version then, ``when`` the deciding expression and
    ``values`` what it read; ``expires`` is when it goes unless an event confirms it.
    """

    since: int
    expires: int | None
    rule: str
    display: str | None
    version: str
    values: dict[str, Any]
    when: str


@dataclass(frozen=True, slots=True)
class StoredAs:
    """What a store last read or wrote of a profile: the version to compare on the next
    write, and the tags and stage as stored (so audiences change by the difference)."""

    version: str
    tags: frozenset[str]
    partition: int = 0  # whose deadline set holds the user
    stage: str | None = None


@dataclass(slots=True)
class Profile:
    """The state of one user.

    ``tags`` maps a tag name to its record (``TagRecord``: since, expires, rule, why);
    ``aggs`` holds aggregate states by name; ``alerts_on`` the edge-triggered alerts that
    are currently true; ``fired`` the timers already fired (by anchor) and expiry latches;
    ``clock`` the latest time applied to this user; ``due`` the next deadline, if any;
    ``recent_ids`` the ids of the user's latest events, so that a producer's retry of one
    of them (the same ``event_id`` in a new message) is not applied twice.

    Identity (docs/identity.md): ``ids`` the person's other ids in the order they joined
    (never its own ``user_id``); ``consent`` the latest consent event, ``[ts, "out"]`` or
    ``[ts, "in"]``; ``reborn`` the forget time of an earlier person under this id, so
    events older than it change nothing. Their defaults let profiles stored before these
    fields existed load unchanged.
    """

    user_id: str
    stage: str | None = None
    stage_since: int | None = None
    tags: dict[str, TagRecord] = field(default_factory=dict)
    aggs: dict[str, Any] = field(default_factory=dict)
    alerts_on: dict[str, int] = field(default_factory=dict)
    fired: dict[str, Any] = field(default_factory=dict)
    clock: int = 0
    due: int | None = None
    events: int = 0
    recent_ids: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    consent: list[Any] | None = None  # the latest [ts, "out" | "in"] (docs/identity.md)
    reborn: int | None = None
    # The store's bookkeeping, carried with the profile rather than kept by the store for
    # every user it ever saw; not part of the profile's data.
    stored: StoredAs | None = field(default=None, compare=False, repr=False)

    @property
    def partition(self) -> int:
        """The partition whose deadline index holds the profile, as last stored (0 for a
        profile never stored)."""
        return self.stored.partition if self.stored is not None else 0

    @property
    def opted_out(self) -> bool:
        """Whether the person has said no to marketing (their latest consent event)."""
        return self.consent is not None and self.consent[1] == "out"

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-native data. Shallow: it shares the nested dicts and lists
        with the profile (serialise it, or copy it, before changing the profile again)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild a profile from ``to_dict`` output."""
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(Profile) if f.name != "stored")

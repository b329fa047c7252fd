"""A user's profile: everything the engine keeps about one user, as JSON-native data."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class Profile:
    """The state of one user.

    ``tags`` maps a tag name to its record (since, expires, rule, version, values);
    ``aggs`` holds aggregate states by name; ``alerts_on`` the edge-triggered alerts that
    are currently true; ``fired`` the timers already fired (by anchor) and expiry latches;
    ``clock`` the latest time applied to this user; ``due`` the next deadline, if any.
    """

    user_id: str
    stage: str | None = None
    stage_since: int | None = None
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggs: dict[str, Any] = field(default_factory=dict)
    alerts_on: dict[str, int] = field(default_factory=dict)
    fired: dict[str, Any] = field(default_factory=dict)
    clock: int = 0
    due: int | None = None
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-native data. Shallow: it shares the nested dicts and lists
        with the profile (serialise it, or copy it, before changing the profile again)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild a profile from ``to_dict`` output."""
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(Profile))

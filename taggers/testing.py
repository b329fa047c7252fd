"""Helpers for tests: event factories and the in-memory store, in one place."""

from __future__ import annotations

import itertools
from typing import Any

from taggers.durations import DAY_MS
from taggers.events import BehaviourEvent, to_epoch_ms
from taggers.store import MemoryStore

START_MS = to_epoch_ms("2026-01-01T00:00:00Z")
_ids = itertools.count(1)


def make_event(
    type_: str,
    *,
    user: str = "u1",
    day: float = 0.0,
    channel: str | None = "app",
    event_id: str | None = None,
    **props: Any,
) -> BehaviourEvent:
    """A valid event ``day`` days after 2026-01-01 (validated like a real one)."""
    return BehaviourEvent.model_validate(
        {
            "event_id": event_id or f"t{next(_ids)}",
            "user_id": user,
            "type": type_,
            "ts": START_MS + int(day * DAY_MS),
            "channel": channel,
            "props": props,
        }
    )


__all__ = ["START_MS", "MemoryStore", "make_event"]

"""Scaffolding for tests of the pure core: event factories, edited rule packs, and an engine
that fails on cue."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import BehaviourEvent, to_epoch_ms
from taggers.outputs import Output
from taggers.profile import Profile, TagRecord

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


def event_at(ts: int, type_: str, **fields: Any) -> BehaviourEvent:
    """``make_event`` at the exact time ``ts`` (epoch ms) rather than a number of days."""
    return make_event(type_, **fields).model_copy(update={"ts": ts})


def tag_record(since: int = 1, rule: str = "t", version: str = "v1") -> TagRecord:
    """A tag record as the engine writes one, for profiles made by hand."""
    return TagRecord(
        since=since, expires=None, rule=rule, display=None, version=version, values={}, when=""
    )


def edited_rules(target: Path, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of the default pack in ``target`` with text replaced: file name -> (old,
    new). An old text missing from its file raises, so a test cannot edit nothing."""
    shutil.copytree(BUNDLED_RULES, target, ignore=shutil.ignore_patterns("tests"))
    for name, (old, new) in (edits or {}).items():
        path = target / name
        text = path.read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"{old!r} is not in {path}")
        path.write_text(text.replace(old, new), encoding="utf-8")
    return target


class FailsOnRefunds(Engine):
    """An engine with a bug: it raises on refunds, after changing the profile (so that a
    test sees whether what it did is left behind)."""

    def apply(
        self,
        profile: Profile,
        event: BehaviourEvent,
        cause: str | None = None,
        *,
        skipped: Counter[str] | None = None,
    ) -> list[Output]:
        """Engine.apply, then ZeroDivisionError for a refund."""
        outputs = super().apply(profile, event, cause, skipped=skipped)
        if event.type == "refund":
            raise ZeroDivisionError("division by zero")
        return outputs


__all__ = ["START_MS", "FailsOnRefunds", "edited_rules", "make_event", "tag_record"]

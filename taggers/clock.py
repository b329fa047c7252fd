"""Where a stream's time comes from, and which event times are not believed.

Two rules, the same in ``tagger replay`` and in the worker, so that the two agree:

- An event dated more than the allowed skew after it was sent (its message's Kafka
  timestamp; in a replay, when the replay runs) is a ``future`` dead letter, on either
  clock: a device or producer with a wrong clock, a local time labelled UTC, a typo in
  the year. Applied, it would set its user's clock ahead, and every later real event of
  that user would be late for them (windows frozen, deadlines fired early).
- On the event clock, a stream's time is the latest time that two different users'
  events have reached (``EventClock``): one user's events alone never move it, so a
  single outlier that got past the first rule cannot move other users' time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from taggers.durations import HOUR_MS
from taggers.events import BehaviourEvent, EventError, format_ts

MAX_FUTURE_SKEW_MS: Final = HOUR_MS
"""The default skew: docs/events.md (Time) says why an hour."""


def future_error(event: BehaviourEvent, sent_at: int, max_skew_ms: int) -> EventError | None:
    """The ``future`` dead letter for an event dated more than ``max_skew_ms`` after it was
    sent (epoch ms), else None. Decided by the message alone, so a redelivery after a
    crash or a rebalance gets the same answer."""
    if event.ts <= sent_at + max_skew_ms:
        return None
    ahead = (event.ts - sent_at) / HOUR_MS
    return EventError(
        "future",
        f"ts {format_ts(event.ts)} is {ahead:.1f} h after the event was sent "
        f"({format_ts(sent_at)}); at most {max_skew_ms / HOUR_MS:g} h is allowed "
        "(a wrong device clock, or a local time labelled Z?)",
    )


@dataclass(slots=True)
class EventClock:
    """A stream's time on the event clock: the latest time that events of two different
    users have reached (the second largest of the users' latest event times).

    It depends only on the set of events seen, not on their order, and seeing more events
    never moves it back. A user's own events move only that user's clock (``Engine.apply``
    fires their deadlines up to each of their events), so waiting for a second user
    delays only other users' timers, and only until the next event of anyone else.
    """

    leader: str | None = None  # the user with the latest event
    lead: int = 0  # that event's time
    time: int = 0  # the latest time a second user's events reached

    def observe(self, user_id: str, ts: int) -> bool:
        """Take an applied event into account; whether the clock moved."""
        if user_id == self.leader:
            self.lead = max(self.lead, ts)
            return False
        if ts > self.lead:
            moved = self.leader is not None and self.lead > self.time
            if moved:
                self.time = self.lead
            self.leader, self.lead = user_id, ts
            return moved
        if ts > self.time:
            self.time = ts
            return True
        return False

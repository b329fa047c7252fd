"""How far a worker has applied each input partition, so that wall-clock timers never run
ahead of the events that could still change what they decide.

A deadline decided on state older than its due time can be wrong: a ``coupon_unused``
reminder fires although the ``coupon_redeemed`` is already on the topic, waiting in the
consumer lag. So a partition's deadlines fire up to the wall clock only while every
message on it is applied; while it lags, up to the Kafka timestamp of the latest message
applied (when it was sent), so a deadline waits until the events sent before it are in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from faust.types import TP, Message


def sent_at(message: Message) -> int | None:
    """A message's Kafka timestamp in epoch ms, or None if it has none."""
    timestamp = message.timestamp
    if timestamp is None or timestamp < 0:
        return None
    return round(timestamp * 1000)


@dataclass(slots=True)
class Progress:
    """Per input topic partition, what this worker handed to its agent and applied in the
    current consumer group generation; a rebalance (a new generation) starts afresh, as the
    partitions may have moved on under another worker meanwhile."""

    generation: int = -1
    taken: dict[TP, int] = field(default_factory=dict)  # the next offset handed over
    applied: dict[TP, int] = field(default_factory=dict)  # the next offset to apply
    sent: dict[TP, int] = field(default_factory=dict)  # latest Kafka timestamp applied (ms)

    def renew(self, generation: int) -> None:
        """Forget what was applied in an earlier generation."""
        if generation != self.generation:
            self.generation = generation
            self.taken.clear()
            self.applied.clear()
            self.sent.clear()

    def took(self, tp: TP, messages: list[Message]) -> None:
        """Messages of a partition were handed to the agent (not applied yet)."""
        self.taken[tp] = messages[-1].offset + 1

    def done(self, tp: TP, messages: list[Message]) -> None:
        """Messages of a partition are applied: in Redis, their outputs sent."""
        self.applied[tp] = messages[-1].offset + 1
        latest = max((t for m in messages if (t := sent_at(m)) is not None), default=None)
        if latest is not None and latest > self.sent.get(tp, -1):
            self.sent[tp] = latest

    def reached(self, tp: TP, end: int | None, position: int | None, now: int) -> int | None:
        """Up to when a partition's deadlines may fire: ``now`` (epoch ms, read before
        ``end``, the partition's end offset, was asked for) if every message before ``end``
        is applied; else the latest applied message's Kafka timestamp (at most ``now``);
        None if no message is known to be applied. ``position`` is the consumer's, used
        only when the agent took nothing of the partition in this generation (then it is
        the committed offset, all before it applied by this worker or an earlier owner,
        unless a first fetch is on its way to the agent)."""
        applied = self.applied.get(tp)
        if applied is None and tp not in self.taken:
            applied = position
        if end is not None and applied is not None and applied >= end:
            return now
        sent = self.sent.get(tp)
        return None if sent is None else min(sent, now)

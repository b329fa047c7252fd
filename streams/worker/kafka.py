"""What the worker's parts need of Kafka: a consumer group member and a producer.

Faust's app, consumer and producer satisfy these; tests drive the parts with fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Set
from typing import Any, Protocol

from faust.types import TP, Message


class Consumer(Protocol):
    """The parts of Faust's consumer the worker uses."""

    def track_message(self, message: Message) -> None:
        """Hold a rebalance until ``message`` is acked."""
        ...

    def ack(self, message: Message) -> bool:
        """Let the message's offset be committed."""
        ...

    def assignment(self) -> Set[TP]:
        """The partitions this member holds."""
        ...

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """The end offsets of these partitions (asks the broker)."""
        ...

    async def position(self, tp: TP) -> int | None:
        """The offset the consumer reads next on a partition."""
        ...


class Group(Protocol):
    """A member of the consumer group: its consumer and its current generation."""

    @property
    def consumer(self) -> Consumer:
        """This member's consumer."""
        ...

    @property
    def consumer_generation_id(self) -> int:
        """The group generation (a rebalance starts a new one)."""
        ...


class Producer(Protocol):
    """Faust's producer, as the worker sends: straight to it, no topic objects."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        """Queue a record; the awaitable returned resolves when the broker has it."""
        ...

"""Fakes of what the worker's parts need of Kafka and Redis, to drive them without either.

``FakeProducer`` records what is sent and can refuse on cue; ``FakeGroup`` is a group
member whose consumer records what is tracked and acked; ``CuedStore`` is the in-memory
store handing out copies (as Redis does), which can refuse a save with a conflict or be
unreachable on cue.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from faust.types import TP, Message

from streams.settings import Settings
from streams.transport import Fetch
from streams.worker.routing import Topics
from taggers.events import BehaviourEvent
from taggers.profile import Profile
from taggers.sources import Origin
from taggers.store import MemoryStore, StoreConflictError

SETTINGS = Settings()
TOPICS = Topics.from_settings(SETTINGS)


@dataclass(frozen=True, slots=True)
class Sent:
    """One record the producer took."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp: float | None
    headers: Any
    seen: Any = None  # what the producer's ``watch`` said when this was sent

    @property
    def json(self) -> Any:
        """The value, decoded."""
        return orjson.loads(self.value)


@dataclass
class FakeProducer:
    """Records what is sent (with what ``watch`` says at the time, if set); with
    ``refuse`` set, the broker refuses every record from then on (its ack raises it)."""

    sent: list[Sent] = field(default_factory=list)
    refuse: Exception | None = None
    watch: Callable[[], Any] | None = None

    async def start(self) -> FakeProducer:
        """Faust's ``maybe_start_producer``."""
        return self

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        """Queue a record; its ack resolves at once, or raises while refusing."""
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse is not None:
            ack.set_exception(self.refuse)
        else:
            seen = None if self.watch is None else self.watch()
            self.sent.append(Sent(topic, key, value or b"", timestamp, headers, seen))
            ack.set_result(None)
        return ack

    def on(self, topic: str) -> list[Sent]:
        """What was sent to a topic, in order."""
        return [record for record in self.sent if record.topic == topic]


@dataclass
class FakeConsumer:
    """A consumer that records what is tracked and acked."""

    assigned: set[TP] = field(default_factory=set)
    ends: dict[TP, int] = field(default_factory=dict)
    positions: dict[TP, int] = field(default_factory=dict)
    tracked: list[Message] = field(default_factory=list)
    acked: list[Message] = field(default_factory=list)

    def track_message(self, message: Message) -> None:
        """See ``streams.worker.kafka.Consumer``."""
        self.tracked.append(message)

    def ack(self, message: Message) -> bool:
        """See ``streams.worker.kafka.Consumer``."""
        self.acked.append(message)
        return True

    def assignment(self) -> set[TP]:
        """See ``streams.worker.kafka.Consumer``."""
        return set(self.assigned)

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        """See ``streams.worker.kafka.Consumer``."""
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    async def position(self, tp: TP) -> int | None:
        """See ``streams.worker.kafka.Consumer``."""
        return self.positions.get(tp)


@dataclass
class FakeGroup:
    """A group member in generation ``consumer_generation_id``."""

    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    consumer_generation_id: int = 1


class CuedStore(MemoryStore):
    """The in-memory store, handing out copies as Redis does. ``conflicts``: how many
    coming saves are refused as a conflict (after ``rival``, if set, saved its profiles:
    another writer that got there first). ``down``: the calls (``load``, ``save``, ...)
    that fail as if Redis were unreachable; ``outage`` is set at the first such failure."""

    def __init__(self) -> None:
        super().__init__()
        self.conflicts = 0
        self.rival: list[tuple[list[Profile], dict[str, dict[str, int]]]] = []
        self.down: set[str] = set()
        self.outage = asyncio.Event()
        self.saves = 0  # saves that were not refused

    @property
    def hands_out_copies(self) -> bool:
        """What it loads is a deep copy, as from Redis."""
        return True

    def _reach(self, call: str) -> None:
        if call in self.down:
            self.outage.set()
            raise redis.ConnectionError("Connection refused (a test's outage)")

    def load(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """See MemoryStore.load; copies."""
        self._reach("load")
        return copy.deepcopy(super().load(user_ids))

    def load_applied(
        self, sources: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Profile], dict[str, dict[str, int]]]:
        """See MemoryStore.load_applied; copies."""
        self._reach("load_applied")
        profiles, applied = super().load_applied(sources)
        return copy.deepcopy(profiles), applied

    def save(
        self,
        profiles: Iterable[Profile],
        *,
        partition: int = 0,
        offsets: Mapping[str, Mapping[str, int]] | None = None,
        links: Mapping[str, str] | None = None,
        absorbed: Iterable[Profile] = (),
    ) -> dict[str, str]:
        """See MemoryStore.save; refused on cue."""
        self._reach("save")
        profiles = list(profiles)
        if self.conflicts:
            self.conflicts -= 1
            for theirs, their_offsets in self.rival:
                super().save(copy.deepcopy(theirs), partition=partition, offsets=their_offsets)
            self.rival = []
            raise StoreConflictError([profile.user_id for profile in profiles])
        self.saves += 1
        return super().save(
            copy.deepcopy(profiles),
            partition=partition,
            offsets=offsets,
            links=links,
            absorbed=absorbed,
        )

    def due(self, until: int, *, partition: int = 0, limit: int = 1000) -> list[str]:
        """See MemoryStore.due."""
        self._reach("due")
        return super().due(until, partition=partition, limit=limit)


def message(
    tp: TP,
    offset: int,
    event: BehaviourEvent | bytes,
    *,
    key: bytes | None = None,
    origin: Origin | None = None,
    generation: int = 1,
) -> Message:
    """A message as the consumer hands it over; an event is keyed by its user unless
    ``key`` says otherwise."""
    if isinstance(event, BehaviourEvent):
        value, sent = event.model_dump_json().encode(), event.ts / 1000  # sent as it happened
        key = key or event.user_id.encode()
    else:
        value, sent = event, time.time()
    headers = [] if origin is None else [origin.header()]
    return Message(
        tp.topic,
        tp.partition,
        offset,
        sent,
        0,
        headers,
        key,
        value,
        None,
        tp=tp,
        generation_id=generation,
    )


def fetch(*messages: Message) -> Fetch:
    """A fetch of these messages, grouped by partition in the order given."""
    parts: dict[TP, list[Message]] = {}
    for each in messages:
        parts.setdefault(each.tp, []).append(each)
    return Fetch(parts)

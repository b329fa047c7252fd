"""Output routing: which topic each thing a batch gives goes to, and how it is written.

A batch gives dead letters (to the DLQ), re-keyed copies (to the re-keyed input topic,
keyed by user, with their origin) and outputs (each kind to its topic, keyed by person,
with headers naming its kind and schema version; a kind declared ``everywhere``, as
identity merges and forgotten people, to every output topic once). The topics of the
input sources (``taggers.sources``) and of the output kinds (``taggers.outputs``) are the
settings their declarations name (``streams.topics``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field

import orjson
from faust.types import TP

from streams.settings import Settings
from streams.topics import input_topics, output_topics
from taggers.outputs import OUTPUT_KINDS, Output, kind_of, output_to_dict
from taggers.pipeline import Prepared
from taggers.sources import REKEYED, InputSource


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: ``timestamp`` in seconds (None: the producer's clock)."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp: float | None = None
    headers: list[tuple[str, bytes]] | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """The worker's topics: its input sources', each output kind's, and the DLQ."""

    inputs: Mapping[InputSource, str]
    outputs: Mapping[str, str]  # output kind (with a topic of its own) -> topic
    dlq: str
    _sources: dict[str, InputSource] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sources = {name: source for source, name in self.inputs.items()}
        if len(sources) < len(self.inputs):
            raise ValueError(f"two input sources read one topic: {dict(self.inputs)}")
        object.__setattr__(self, "_sources", sources)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        """The topics the settings name."""
        return cls(input_topics(settings), output_topics(settings), settings.dlq_topic)

    def source_of(self, topic: str) -> InputSource:
        """The input source a topic is (KeyError if it is none)."""
        return self._sources[topic]

    @property
    def input_names(self) -> frozenset[str]:
        """The names of the input topics."""
        return frozenset(self.inputs.values())

    def assigned(self, assignment: Set[TP]) -> list[TP]:
        """The input partitions of an assignment, in order."""
        names = self.input_names
        return sorted(tp for tp in assignment if tp.topic in names)


# Made once: the same headers go on every record of a kind (the producer only reads them).
_HEADERS: dict[str, list[tuple[str, bytes]]] = {kind.name: kind.headers for kind in OUTPUT_KINDS}


def output_topics_of(output: Output, topics: Topics) -> tuple[str, ...]:
    """The topics an output goes to: its kind's, or (a kind sent everywhere, such as a
    forgotten person) each output topic once."""
    if kind_of(output).everywhere:
        return tuple(dict.fromkeys(topics.outputs.values()))
    return (topics.outputs[output.kind],)


def routed(batch: Prepared, topics: Topics) -> Iterator[Outgoing]:
    """What a batch sends, in order: its dead letters, its copies, its outputs."""
    for dead in batch.dead:
        yield Outgoing(topics.dlq, None, dead.to_json(topics.inputs))
    for copy in batch.rekey:
        # With its origin, which guards it when applied (a crash makes it sent again),
        # and the original's send time, by which timers and the future check judge it
        # as they did the original.
        sent = None if copy.timestamp is None else copy.timestamp / 1000
        key, headers = copy.user_id.encode(), [copy.origin.header()]
        yield Outgoing(topics.inputs[REKEYED], key, copy.value, sent, headers)
    for output in batch.outputs:
        # Keyed by person: a subscriber reads all of one person's outputs in order,
        # whichever of the person's ids their events came under.
        key, value = output.person_id.encode(), orjson.dumps(output_to_dict(output))
        headers = _HEADERS[output.kind]
        for topic in output_topics_of(output, topics):
            yield Outgoing(topic, key, value, None, headers)

"""The worker's input sources: the topics it consumes, and how their records are guarded.

``INPUT_SOURCES`` is the one list of them. Routing, the batch guard, the consumer lag
gauge, readiness and the DLQ all read it (``tests/unit/test_input_sources.py`` proves
each entry complete), so adding a source is one entry here and its setting.

What Redis already has is told by position: each user keeps, per *watermark*, the
offset of the last event applied from it (stored as ``o:<watermark>`` in the user's hash).
A watermark is a namespace prefix and a partition:

- ``P``: an event of the events topic keyed by its user, at its own position there;
- ``kP``: a copy of an events-topic event that arrived keyed otherwise, re-sent keyed by
  its user to the re-keyed topic with its origin (``P`` and its offset there, in the
  ``tagger-origin`` header). It is guarded by that origin, never by the copy's own
  offset: after a crash the copies are sent again under new offsets, and only the origin
  tells them apart (see ``taggers.pipeline``);
- ``rP``: a record of the re-keyed topic without an origin (produced by hand, or by a
  release before origins), at its own position there.

The prefixes never change: they are in every stored profile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ORIGIN_HEADER = "tagger-origin"  # on a re-keyed copy: b"PARTITION:OFFSET" of the events topic
COPY_NAMESPACE = "k"  # the watermarks of copies, by the partition of their origin
_ORIGIN = re.compile(rb"([0-9]{1,10}):([0-9]{1,19})")
_MAX_PARTITION = 2**31 - 1  # Kafka's partitions and offsets are int32 and int64
_MAX_OFFSET = 2**63 - 1

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes]  # as Faust hands them over


@dataclass(frozen=True, slots=True)
class InputSource:
    """One input topic of the worker.

    ``role`` names it; ``topic_setting`` is the ``streams.settings.Settings`` field that
    holds its topic's name; ``namespace`` prefixes the watermarks of the records guarded
    by their own position. With ``rekeys``, an event whose Kafka key is not its user id is
    not applied from here but re-sent, keyed by its user, to the source that
    ``reads_origin``: a user's events must all pass through one partition to be applied
    in order. With ``reads_origin``, a record's origin header (a position in the source
    that re-keys) guards it instead of its own position."""

    role: str
    topic_setting: str
    namespace: str
    rekeys: bool = False
    reads_origin: bool = False

    def watermark(self, partition: int) -> str:
        """The watermark that guards records of this partition by their own position."""
        return f"{self.namespace}{partition}"


EVENTS = InputSource("events", "events_topic", "", rekeys=True)
REKEYED = InputSource("rekeyed", "rekeyed_topic", "r", reads_origin=True)
INPUT_SOURCES: tuple[InputSource, ...] = (EVENTS, REKEYED)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a re-keyed copy came from: its partition and offset in the events topic."""

    partition: int
    offset: int

    @property
    def source(self) -> InputSource:
        """The input source the position is in: the one that re-keys."""
        return EVENTS

    @property
    def watermark(self) -> str:
        """The watermark that guards copies from this input partition."""
        return f"{COPY_NAMESPACE}{self.partition}"

    def header(self) -> tuple[str, bytes]:
        """The Kafka header that carries it on the copy."""
        return ORIGIN_HEADER, f"{self.partition}:{self.offset}".encode()


def origin_of(headers: Headers | None) -> Origin | None:
    """The origin a re-keyed record carries, or None if it has none (produced by hand).

    Raises ValueError if the header is unreadable, out of range or there twice."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    found = [value for name, value in pairs if name == ORIGIN_HEADER]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{len(found)} {ORIGIN_HEADER} headers, expected one")
    match = _ORIGIN.fullmatch(found[0] or b"")
    if match is None:
        shown = (found[0] or b"")[:40]
        raise ValueError(f"{ORIGIN_HEADER} header must be PARTITION:OFFSET, got {shown!r}")
    origin = Origin(int(match[1]), int(match[2]))
    if origin.partition > _MAX_PARTITION or origin.offset > _MAX_OFFSET:
        raise ValueError(f"{ORIGIN_HEADER} header out of range: {match[0]!r}")
    return origin

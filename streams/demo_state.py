"""What `tagger demo` shows, as numbers: the demo's state, fed by the decisions it reads
back off the output topics, the dead letters and the events it sent; no I/O, no terminal.

Both of the demo's views (the live panel of ``streams.demo_view`` and the plain lines of
``streams.demo``) render this state, so what they show is tested here once.

Who holds a tag and who is in which stage is kept as a subscriber of the outputs would
keep it (docs/outputs.md, docs/identity.md): a tag change adds or removes one person's
tag, a transition moves the person, a merge drops the absorbed id (the survivor's own
changes follow), a forgotten person leaves everything.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from taggers.display import OutputTally
from taggers.outputs import ALERT, FORGOTTEN, IDENTITY_MERGE, TAG_CHANGE, TRANSITION

RATE_WINDOW_SECONDS: Final = 5.0  # throughput is measured over the last few seconds
LOG_KEPT: Final = 200  # latest decisions kept: more than any terminal shows


@dataclass(frozen=True, slots=True)
class StackAddresses:
    """Where the demo's processes are, for a person to reach them from another shell."""

    web: str  # the worker's HTTP server: http://127.0.0.1:PORT
    broker: str  # host:port of the Kafka-protocol broker
    redis: str  # redis://127.0.0.1:PORT/0
    broker_pid: int | None
    redis_pid: int | None
    worker_pid: int
    worker_log: Path
    look_up: str  # a `tagger profile` command, a user id to follow

    def reminder(self) -> str:
        """One line that says where everything is and how to stop (the plain view prints
        it now and then, so that it never scrolls away for long)."""
        return (
            f"   worker {self.web} (/profiles/<user_id>, /tags/<tag>/members, /metrics),"
            f" broker {self.broker}, redis {self.redis}; Ctrl-C stops everything"
        )


@dataclass(frozen=True, slots=True)
class WorkerNumbers:
    """What the worker's ``/metrics`` said: the input events it has handled (every outcome
    but ``rekeyed``, whose copy is counted when it is handled), and its consumer lag (the
    messages of its partitions not yet applied)."""

    handled: int
    lag: int


def worker_numbers(exposition: str) -> WorkerNumbers:
    """The worker's numbers, read from its metrics in the Prometheus text format."""
    handled = lag = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "tagger_events_total" and sample.labels["outcome"] != "rekeyed":
                handled += sample.value
            elif sample.name == "tagger_consumer_lag_messages":
                lag += sample.value
    return WorkerNumbers(int(handled), int(lag))


@dataclass(frozen=True, slots=True)
class Decision:
    """One output as the log shows it: its kind, whether it takes something away (a tag
    removed), and its line (``describe_output``)."""

    kind: str
    line: str
    removal: bool = False


@dataclass
class DemoState:
    """The demo's counters; every method takes the time it is called at (monotonic
    seconds), so that a test can drive it without waiting."""

    started: float  # when streaming began
    stages: tuple[str, ...] = ()  # the rule set's lifecycle stages, in their order
    sent: int = 0  # events sent to the events topic
    tally: OutputTally = field(default_factory=OutputTally)
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    last_dead_letter: str = ""  # the latest one's error
    last_user: str = "<user_id>"  # the latest person a decision was about
    log: deque[Decision] = field(default_factory=lambda: deque(maxlen=LOG_KEPT))
    holders: Counter[str] = field(default_factory=Counter)  # tag -> people holding it now
    worker: WorkerNumbers | None = None  # None until its metrics were read
    _tags_of: dict[str, set[str]] = field(default_factory=dict)
    _stage_of: dict[str, str] = field(default_factory=dict)
    # (time, events sent, decisions, handled by the worker) at each ``tick``, oldest first
    _samples: deque[tuple[float, int, int, int]] = field(default_factory=deque)

    @property
    def decisions(self) -> int:
        """Outputs read back, of every kind."""
        return sum(self.tally.kinds.values())

    def elapsed(self, now: float) -> float:
        """Seconds since streaming began."""
        return now - self.started

    def add_sent(self, count: int) -> None:
        """``count`` more events were sent."""
        self.sent += count

    def add_dead_letter(self, record: Mapping[str, Any]) -> None:
        """Count one dead letter in its JSON form (the DLQ record)."""
        self.dead_letters[str(record.get("reason", "?"))] += 1
        self.last_dead_letter = str(record.get("error", ""))

    def add_decision(self, record: Mapping[str, Any], line: str) -> None:
        """Count one output in its JSON form, shown as ``line`` in the log."""
        self.tally.add(record)
        kind = record["kind"]
        person = str(record.get("person_id", record["user_id"]))
        if kind == TAG_CHANGE.name:
            self._tag_change(person, str(record["tag"]), record["op"] == "add")
        elif kind == TRANSITION.name:
            self._stage_of[person] = str(record["to"])
        elif kind == IDENTITY_MERGE.name:
            self._drop(str(record["absorbed"]))
        elif kind == FORGOTTEN.name:
            for gone in {person, *map(str, record.get("ids", ()))}:
                self._drop(gone)
        if kind != FORGOTTEN.name:  # a forgotten person has no profile to look up
            self.last_user = person
        removal = kind == TAG_CHANGE.name and record["op"] != "add"
        self.log.append(Decision(kind, line, removal))

    def _tag_change(self, person: str, tag: str, added: bool) -> None:
        tags = self._tags_of.setdefault(person, set())
        if added and tag not in tags:
            tags.add(tag)
            self.holders[tag] += 1
        elif not added and tag in tags:
            tags.discard(tag)
            self.holders[tag] -= 1

    def _drop(self, person: str) -> None:
        for tag in self._tags_of.pop(person, set()):
            self.holders[tag] -= 1
        self._stage_of.pop(person, None)

    @property
    def handled(self) -> int:
        """Events the worker has handled, as its metrics said last (0 before)."""
        return self.worker.handled if self.worker is not None else 0

    def tick(self, now: float) -> None:
        """Take a sample of the totals for the rates (call it once per step)."""
        self._samples.append((now, self.sent, self.decisions, self.handled))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_SECONDS:
            self._samples.popleft()

    def rates(self, now: float) -> tuple[float, float, float]:
        """Per second over the last few seconds (from the oldest sample kept to now): events
        sent, decisions read, events the worker handled; zeros before a second sample."""
        if not self._samples:
            return 0.0, 0.0, 0.0
        then, sent, decisions, handled = self._samples[0]
        span = now - then
        if span <= 0:
            return 0.0, 0.0, 0.0
        return (
            (self.sent - sent) / span,
            (self.decisions - decisions) / span,
            (self.handled - handled) / span,
        )

    def stage_counts(self) -> list[tuple[str, int]]:
        """People per lifecycle stage: the rule set's stages in order (zeros too), then any
        stage the outputs named that the rule set does not (another rule version's)."""
        counts = Counter(self._stage_of.values())
        names = [*self.stages, *sorted(set(counts) - set(self.stages))]
        return [(name, counts[name]) for name in names]

    def top_tags(self, most: int) -> list[tuple[str, int]]:
        """The ``most`` tags held by the most people now, most first (ties by name)."""
        held = [(tag, count) for tag, count in self.holders.items() if count > 0]
        return sorted(held, key=lambda item: (-item[1], item[0]))[:most]

    def alerts(self) -> list[tuple[str, int]]:
        """Alerts raised, by name, the most raised first (ties by name)."""
        return sorted(self.tally.by(ALERT), key=lambda item: (-item[1], item[0]))

    def summary(self, now: float) -> str:
        """The one-line summary both views print: time, events, every kind, dead letters."""
        return (
            f"== {self.elapsed(now):5.0f}s  events sent {self.sent}  {self.tally.line()}"
            f"  dead letters {sum(self.dead_letters.values())}"
        )

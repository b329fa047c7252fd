"""`tagger demo`: the whole product on this machine, with nothing installed beforehand.

Starts a Kafka-protocol broker (tansu) and a redis-server on free loopback ports, a worker
(`tagger run`, on event time), and the simulator producing at a steady rate, and shows
what the worker decides as it comes: on a terminal, a live view (``streams.demo_view``:
where everything is, throughput, stages, tags, alerts and dead letters over the latest
decisions); otherwise plain lines, a summary and where everything is every few seconds.
Both show the same state (``streams.demo_state``), fed by the outputs read back.

Everything it started is stopped on exit, in order: the generator, then the worker (while
the broker is still there, so that it commits and leaves its group), then redis-server
and the broker. The children run in sessions of their own, so a terminal's Ctrl-C reaches
only the demo; a second Ctrl-C (or SIGTERM, SIGHUP) while it stops kills what is left
at once instead of waiting.
"""

from __future__ import annotations

import gc
import http.client
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, TextIO

import orjson
from kafka import KafkaConsumer, KafkaProducer

from streams.demo_state import DemoState, StackAddresses, WorkerNumbers, worker_numbers
from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker, stop_process
from streams.settings import Settings
from streams.topics import ensure_topics, output_topics
from taggers.bundled import BUNDLED_RULES
from taggers.display import describe_output, display_zone
from taggers.outputs import kind_named
from taggers.ruleset import RuleSet
from taggers.simulate import SimulationConfig, simulate

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord

SUMMARY_EVERY_SECONDS: Final = 5.0
# A running worker commits and leaves its group in 1-3 s; one stopped while it joins its
# group waits for the join (tansu holds it about 5 s), and is killed instead: it has
# nothing to commit yet, and the broker goes next.
WORKER_STOP_SECONDS: Final = 6.0
LOG_TAIL_LINES: Final = 20  # of a worker's log, printed when it dies
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FEED_AHEAD: Final = 10_000  # simulated lines made ahead of sending
METRICS_EVERY_SECONDS: Final = 1.0  # how often the worker's /metrics are read
METRICS_TIMEOUT_SECONDS: Final = 1.0
POLL_MS: Final = 100  # the longest wait for outputs: the view redraws between two waits

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs: for how long, how fast, which simulated shop and which rules."""

    rules_dir: Path  # absolute: the worker runs in a folder of its own
    duration: float | None = None  # seconds; None: until Ctrl-C
    rate: int = 300  # events per second
    users: int = 2000
    days: int = 365
    seed: int = 1
    malformed: float = 0.005
    show: int = 20  # plain lines: most outputs printed per second (the summary counts all)
    plain: bool = False  # plain lines even on a terminal (never the live view)


class LiveViewError(Exception):
    """The live view cannot be shown (rich is not installed); nothing was started."""


class _Signals:
    """Ctrl-C as the demo reads it: the first one stops, any later one hurries the stop.

    The handler only notes the signal; the demo looks between its steps, each bounded in
    time. Raising from the handler (as KeyboardInterrupt does) would land inside
    kafka-python, which takes any exception in its calls for its own and can then wait
    forever (measured: a Ctrl-C just after the worker started hung the demo).
    """

    def __init__(self) -> None:
        self.requested = False  # a stop signal came
        self.hurry = False  # another one came, or one while stopping: kill, do not wait
        self._stopping = False
        self.stop_began = 0.0  # time.monotonic() when the stop began
        self._previous: dict[signal.Signals, _Handler] = {}

    def __enter__(self) -> Self:
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested or self._stopping:
            self.hurry = True
        self.requested = True

    def begin_stop(self, out: TextIO) -> None:
        """From here on the demo stops: say so once; a signal now hurries it."""
        if not self._stopping:
            self._stopping = True
            self.stop_began = time.monotonic()
            print("stopping (Ctrl-C again kills at once) ...", file=out, flush=True)

    def hurried(self) -> bool:
        """Whether to kill rather than wait (``stop_process`` asks as it waits)."""
        return self.hurry


def run_demo(options: DemoOptions, rules: RuleSet, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the exit code (1 when the worker died). Stops all it started.
    LiveViewError, before anything starts, when ``out`` is a terminal and rich is missing.
    """
    view = _view_maker(options, rules.version, out)
    with (
        _Signals() as signals,
        tempfile.TemporaryDirectory(prefix="tagger-demo-") as folder,
        ExitStack() as stack,
    ):
        try:
            code = _run(options, rules, Path(folder), stack, signals, view, out)
        finally:
            signals.begin_stop(out)
        # leaving the stack stops what was started, last first
    took = time.monotonic() - signals.stop_began
    print(
        f"stopped: broker, redis-server and worker are gone (in {took:.1f}s).",
        file=out,
        flush=True,
    )
    return code


class _View(Protocol):
    """What the demo streams into: shown on entering, redrawn by ``show``, left on exit."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def show(self, state: DemoState, now: float) -> None: ...


_ViewMaker = Callable[[StackAddresses], _View]


def wants_live_view(options: DemoOptions, out: TextIO) -> bool:
    """The live view on a terminal, unless ``--plain``; plain lines on a pipe or a file."""
    return not options.plain and out.isatty()


def _view_maker(options: DemoOptions, version: str, out: TextIO) -> _ViewMaker:
    """How the demo will show what happens, chosen (and rich imported) before it starts."""
    if not wants_live_view(options, out):
        return lambda where: PlainView(out, where, options.show)
    try:
        from streams.demo_view import LiveView  # noqa: PLC0415  (rich: the demo extra)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "rich":
            raise
        raise LiveViewError(
            "the live view needs the rich package: pip install 'realtime-tagger[demo]'"
            " (or --plain for plain lines)"
        ) from None
    return lambda where: LiveView(out, where, version)


def _run(
    options: DemoOptions,
    rules: RuleSet,
    folder: Path,
    stack: ExitStack,
    signals: _Signals,
    view: _ViewMaker,
    out: TextIO,
) -> int:
    """Start the stack, then stream; at each step, a stop signal ends it (code 0)."""
    print(
        f"rules: {options.rules_dir} (version {rules.version})\n"
        "starting a local broker (tansu) and redis-server ...",
        file=out,
        flush=True,
    )
    feed = _Feed(options)  # it takes seconds before the first line: start it now
    broker = TansuBroker()
    stack.callback(_stop_step, "broker", broker.close, signals, out)
    broker.start()
    redis_server = RedisServer()
    stack.callback(_stop_step, "redis-server", redis_server.close, signals, out)
    if signals.requested:
        return 0
    redis_server.start()
    settings = Settings(
        broker_url=broker.url,
        redis_url=redis_server.url,
        rules_dir=options.rules_dir,
        partitions=4,
        fetch_max_wait_ms=100,
        session_timeout=10,
        clock="event",
        sweep_interval=0.5,
        web_port=free_port(),
        web_bind="127.0.0.1",
    )
    if signals.requested:
        return 0
    ensure_topics(settings)
    if signals.requested:
        return 0
    log_path = folder / "worker.log"
    worker = start_worker(settings, folder, loglevel="info")
    stack.callback(
        _stop_step,
        "worker",
        lambda hurry: stop_process(worker, WORKER_STOP_SECONDS, hurry),
        signals,
        out,
    )
    web = f"http://127.0.0.1:{settings.web_port}"
    look_up = _profile_command(settings, options.rules_dir)
    print(
        f"broker {broker.bootstrap} (pid {broker.pid}), redis {redis_server.url}"
        f" (pid {redis_server.pid}), worker pid {worker.pid} (log: {log_path})\n"
        f"profiles at {web}/profiles/<user_id>, metrics at {web}/metrics\n"
        f"look up a user while it runs: {look_up} <user_id>\n"
        "Ctrl-C stops everything.",
        file=out,
        flush=True,
    )
    where = StackAddresses(
        web=web,
        broker=broker.bootstrap,
        redis=redis_server.url,
        broker_pid=broker.pid,
        redis_pid=redis_server.pid,
        worker_pid=worker.pid,
        worker_log=log_path,
        look_up=look_up,
    )
    return _stream(settings, options, rules, feed, worker, where, signals, view(where), out)


def _stop_step(
    name: str, close: Callable[[Callable[[], bool]], bool], signals: _Signals, out: TextIO
) -> None:
    began = time.monotonic()
    stopped = close(signals.hurried)
    verb = "stopped" if stopped else "killed"
    print(f"  {name} {verb} ({time.monotonic() - began:.1f}s)", file=out, flush=True)


def _profile_command(settings: Settings, rules_dir: Path) -> str:
    """A ``tagger profile`` line that works as is from another shell while the demo runs."""
    rules = "" if rules_dir == BUNDLED_RULES else f" --rules {shlex.quote(str(rules_dir))}"
    return f"TAGGER_REDIS_URL={settings.redis_url} tagger profile{rules}"


class _Feed:
    """The simulator's lines, made in a thread of its own.

    The simulator orders a whole history before its first line (seconds for the default
    shop): made here, that happens while the stack starts, and the demo keeps hearing
    Ctrl-C. A bounded queue keeps it from running far ahead.
    """

    def __init__(self, options: DemoOptions) -> None:
        self.config = SimulationConfig(
            users=options.users, days=options.days, seed=options.seed, malformed=options.malformed
        )
        self.ended = False  # every line was taken
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=FEED_AHEAD)
        # A daemon: a demo that stops does not wait for the rest of the history.
        threading.Thread(target=self._make, name="demo-feed", daemon=True).start()

    def _make(self) -> None:
        lines = simulate(self.config)
        first = next(lines, None)
        # The history is made now: millions of objects that live until the demo ends.
        # Frozen, the garbage collector passes them over, in the demo's collections and in
        # the one at exit (measured: 3-5 s to exit after a stop, on a busy machine).
        gc.freeze()
        if first is not None:
            self._lines.put(first)
        for line in lines:
            self._lines.put(line)
        self._lines.put(None)

    def take(self, most: int) -> list[str]:
        """Up to ``most`` lines, of those ready now."""
        taken: list[str] = []
        while len(taken) < most and not self.ended:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.ended = True
            else:
                taken.append(line)
        return taken


def _stream(
    settings: Settings,
    options: DemoOptions,
    rules: RuleSet,
    feed: _Feed,
    worker: subprocess.Popen[bytes],
    where: StackAddresses,
    signals: _Signals,
    view: _View,
    out: TextIO,
) -> int:
    producer = KafkaProducer(**client_options(settings), linger_ms=20)
    consumer = KafkaConsumer(
        *output_topics(settings).values(),
        settings.dlq_topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    stages = tuple(rules.lifecycle.stages) if rules.lifecycle is not None else ()
    state = DemoState(started=time.monotonic(), stages=stages)
    reader = _Reader(settings, rules, state, _WorkerWatch(f"{where.web}/metrics"))
    try:
        # the view left (a terminal as it was) before anything below prints
        with view, reader.watch:
            died = _pump(options, feed, worker, signals, view, state, producer, consumer, reader)
        if died:
            _worker_died(worker, where.worker_log, out)
            return 1
        return 0
    finally:
        signals.begin_stop(out)
        print(state.summary(time.monotonic()), file=out, flush=True)
        began = time.monotonic()
        producer.close(timeout=1)  # what it has not sent by then is dropped
        consumer.close()
        print(f"  generator stopped ({time.monotonic() - began:.1f}s)", file=out, flush=True)


def _pump(
    options: DemoOptions,
    feed: _Feed,
    worker: subprocess.Popen[bytes],
    signals: _Signals,
    view: _View,
    state: DemoState,
    producer: KafkaProducer,
    consumer: KafkaConsumer,
    reader: _Reader,
) -> bool:
    """Send events at the rate, read the outputs back and show them, until the duration
    is over or a stop signal comes (False), or the worker dies (True)."""
    while options.duration is None or state.elapsed(time.monotonic()) < options.duration:
        if signals.requested:
            return False
        if worker.poll() is not None:
            return True
        due = int(state.elapsed(time.monotonic()) * options.rate)
        lines = feed.take(due - state.sent)
        for line in lines:
            producer.send(reader.events_topic, key=_key(line), value=line.encode())
        state.add_sent(len(lines))
        for records in consumer.poll(timeout_ms=POLL_MS).values():
            for record in records:
                reader.read(record)
        state.worker = reader.watch.latest
        now = time.monotonic()
        state.tick(now)
        view.show(state, now)
    return False


class _Reader:
    """What comes back from the stack, into the demo's state: outputs and dead letters
    (``read``), the worker's own numbers (``watch``)."""

    def __init__(
        self, settings: Settings, rules: RuleSet, state: DemoState, watch: _WorkerWatch
    ) -> None:
        self.watch = watch
        self.events_topic = settings.events_topic
        self._dlq = settings.dlq_topic
        # An output sent to every output topic (a forgotten person) is counted once.
        self._first_topic = next(iter(output_topics(settings).values()))
        self._types = rules.types
        self._zone = display_zone(rules)
        self._state = state

    def read(self, record: ConsumerRecord) -> None:
        """One record of an output topic or of the DLQ."""
        data = orjson.loads(record.value)
        if record.topic == self._dlq:
            self._state.add_dead_letter(data)
        elif not kind_named(data["kind"]).everywhere or record.topic == self._first_topic:
            self._state.add_decision(data, describe_output(data, self._types, self._zone))


class _WorkerWatch:
    """The worker's ``/metrics``, read every second in a thread of its own, so that a busy
    worker slow to answer never holds up the demo's steps; ``latest``: what it said last
    (None before it answered)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latest: WorkerNumbers | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="demo-metrics", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=METRICS_TIMEOUT_SECONDS)

    def _watch(self) -> None:
        while not self._stop.wait(METRICS_EVERY_SECONDS):
            try:
                with urllib.request.urlopen(self.url, timeout=METRICS_TIMEOUT_SECONDS) as answer:
                    text = answer.read().decode()
            except (OSError, http.client.HTTPException):  # not up yet, or busy: try again
                continue
            self.latest = worker_numbers(text)  # one assignment: the demo reads it whole


class PlainView:
    """The demo as plain lines, for a pipe or a file (or ``--plain``): the decisions as they
    come, at most ``show`` a second (picked evenly among those that came, so that every
    kind shows), and every few seconds a summary, a user to look up and where everything
    is."""

    def __init__(self, out: TextIO, where: StackAddresses, show: int) -> None:
        self.out = out
        self.where = where
        self.most = show
        self._seen = 0  # decisions printed or passed over
        self._allowance = float(show)  # lines it may print now; refills at ``show`` a second
        self._last: float | None = None  # when it was last called
        self._summaries = 0  # how many were printed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.out.flush()

    def show(self, state: DemoState, now: float) -> None:
        """Print what came since the last call, and the summary when one is due."""
        if self._last is not None:
            self._allowance = min(self.most, self._allowance + (now - self._last) * self.most)
        self._last = now
        new = min(state.decisions - self._seen, len(state.log))
        self._seen = state.decisions
        fresh = list(state.log)[len(state.log) - new :]
        take = min(int(self._allowance), len(fresh))
        self._allowance -= take
        for index in range(take):
            print(fresh[index * len(fresh) // take].line, file=self.out)
        if state.elapsed(now) >= (self._summaries + 1) * SUMMARY_EVERY_SECONDS:
            self._summaries += 1
            print(state.summary(now), file=self.out)
            print(f"   look up a user: {self.where.look_up} {state.last_user}", file=self.out)
            print(self.where.reminder(), file=self.out)
        self.out.flush()


def _worker_died(worker: subprocess.Popen[bytes], log_path: Path, out: TextIO) -> None:
    code = worker.returncode
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    if -code in signal.valid_signals():
        how = f"killed by {signal.Signals(-code).name}"
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    with log_path.open(errors="replace") as log:
        tail.extend(line.rstrip("\n") for line in log)
    print(
        f"the worker stopped unexpectedly ({how}); the last lines of its log:",
        file=out,
    )
    for line in tail or ["(its log is empty)"]:
        print(f"  | {line}", file=out)
    out.flush()


def _key(line: str) -> bytes | None:
    try:
        return str(orjson.loads(line)["user_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None

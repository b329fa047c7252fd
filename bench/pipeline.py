"""Pipeline throughput and latency on the local stack (tansu broker, redis-server).

    python bench/pipeline.py [--events 60000] [--rate 2000] [--seconds 15] [--rounds 3]

In one run, on the same simulated events (pre-produced to a fresh topic each time), each
measured ``--rounds`` times, interleaved, with medians and ratios of medians:
- drain throughput (events/s, first to last event applied in Redis), and for our worker
  the CPU it used per event over that drain (user + system, from ``/proc``), of
  - the floor: a bare aiokafka consumer, orjson decoding, one pipelined Redis write per
    event (hiredis, socket_timeout=None), one pipeline per fetch; no engine;
  - a naive Faust agent: ``async for event in stream`` with the engine and awaited Redis
    reads and writes per event (what a typical first version looks like);
  - our worker (`tagger run`);
- our event-to-Redis latency p50/p99 at a steady offered load (``--rate`` events/s) of a
  live stream: each event is stamped with the time it is sent and the worker runs on the
  wall clock, as in production. (Replaying the simulated year in seconds on the event
  clock would fire a month of timers every second: that is a backfill, not a live load.)
Progress is watched in Redis: a partition is drained when its last event's offset is
applied there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaProducer

from streams.kafka_auth import bootstrap
from streams.local_stack import RedisServer, TansuBroker, start_worker
from streams.settings import Settings
from streams.topics import ensure_topics
from taggers.simulate import SimulationConfig, simulate

# The test scaffolding (tests/support) is not installed: import it from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.stack import PARTITIONS, partition_of, pipeline_settings, stop_worker

OFFSET_FIELD = "o:{partition}"
DRAINS = ["floor", "naive", "ours"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def produce_all(settings: Settings, lines: list[bytes]) -> dict[int, tuple[str, int]]:
    """Send every line; return each partition's last (user, offset)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks=1, linger_ms=20)
    last: dict[int, tuple[str, int]] = {}
    futures = []
    for line in lines:
        user = orjson.loads(line)["user_id"]
        futures.append((user, producer.send(settings.events_topic, key=user.encode(), value=line,
                                            partition=partition_of(user.encode()))))  # fmt: skip
    producer.flush()
    for user, future in futures:
        meta = future.get(timeout=30)
        if meta.offset >= last.get(meta.partition, ("", -1))[1]:
            last[meta.partition] = (user, meta.offset)
    producer.close()
    return last


def applied(client: redis.Redis, key: str, partition: int) -> int:
    value = client.hget(key, OFFSET_FIELD.format(partition=partition))
    return -1 if value is None else int(value)


def wait_drained(
    client: redis.Redis,
    key_of: Any,
    last: dict[int, tuple[str, int]],
    pid: int,
    timeout: float = 600,
) -> tuple[float, float]:
    """Seconds from the first event applied to every partition's last event applied, and
    the CPU seconds process ``pid`` used meanwhile."""
    firsts = {p: key_of(user) for p, (user, _) in last.items()}
    start = None
    cpu = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start is None and any(client.exists(k) for k in firsts.values()):
            start, cpu = time.monotonic(), cpu_seconds(pid)
        if all(applied(client, key_of(u), p) >= o for p, (u, o) in last.items()):
            now = time.monotonic()
            return now - (start or now), cpu_seconds(pid) - cpu
        time.sleep(0.02)
    raise TimeoutError("not drained")


# --- the two references, each run in a process of its own ------------------------------------


async def floor_consumer(settings: Settings) -> None:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from redis.asyncio import Redis  # noqa: PLC0415

    client = Redis.from_url(settings.redis_url, socket_timeout=None)
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=bootstrap(settings),
        group_id=settings.app_id,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout * 1000),
        enable_auto_commit=False,
        max_poll_records=1000,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            pipe = client.pipeline(transaction=False)
            for tp, records in batches.items():
                for record in records:
                    event = orjson.loads(record.value)
                    pipe.hset(
                        f"floor:{{{event['user_id']}}}",
                        mapping={"last": record.value, f"o:{tp.partition}": record.offset},
                    )
            await pipe.execute()
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await client.aclose()


def naive_agent(settings: Settings) -> None:
    import faust  # noqa: PLC0415
    from faust.worker import Worker  # noqa: PLC0415
    from redis.asyncio import Redis  # noqa: PLC0415

    from taggers.engine import Engine  # noqa: PLC0415
    from taggers.events import EventError, decode_event  # noqa: PLC0415
    from taggers.profile import Profile  # noqa: PLC0415
    from taggers.ruleset import load_rules  # noqa: PLC0415

    engine = Engine(load_rules(settings.resolved_rules_dir()))
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_session_timeout=settings.session_timeout,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        topic_disable_leader=True,
        datadir=tempfile.mkdtemp(),
    )
    topic = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")
    client = Redis.from_url(settings.redis_url)

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            try:
                decoded = decode_event(event.value)
            except EventError:
                continue
            key = f"naive:{{{decoded.user_id}}}"
            data = await client.hget(key, "p")
            profile = (
                Profile.from_dict(orjson.loads(data))
                if data
                else engine.new_profile(decoded.user_id)
            )
            engine.apply(profile, decoded)
            await client.hset(
                key,
                mapping={
                    "p": orjson.dumps(profile.to_dict()),
                    f"o:{event.message.partition}": event.message.offset,
                },
            )

    worker = Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # as in `tagger run`: the spinner makes every debug record cost
    worker.execute_from_commandline()


def run_role(role: str, settings: Settings, folder: Path) -> subprocess.Popen[bytes]:
    with (folder / f"{role}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, __file__, "--role", role],
            env=os.environ | settings.to_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )


# --- measurements ---------------------------------------------------------------------------


@contextmanager
def fresh_stack() -> Iterator[tuple[Settings, RedisServer, redis.Redis]]:
    """A broker and a Redis of their own for one measurement: nothing an earlier one left
    (topics held in the broker's memory, keys) can slow it down."""
    with TansuBroker() as broker, RedisServer() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=None)
        try:
            app_id = f"bench-{uuid.uuid4().hex[:6]}"
            settings = pipeline_settings(broker, server, batch_size=1000, app_id=app_id)
            ensure_topics(settings)
            yield settings, server, client
        finally:
            client.close()


def drain(name: str, lines: list[bytes], folder: Path) -> tuple[float, float]:
    """The drain rate (events/s) of one of the three, and its CPU per event (us)."""
    with fresh_stack() as (settings, _, client):
        last = produce_all(settings, lines)
        if name == "ours":
            process = start_worker(settings, folder)
            prefix = f"{settings.redis_prefix}:u:"
        else:
            process = run_role(name, settings, folder)
            prefix = f"{name}:"
        try:
            seconds, cpu = wait_drained(client, (prefix + "{{{}}}").format, last, process.pid)
        finally:
            stop_worker(process)
    rate, per_event = len(lines) / seconds, cpu / len(lines) * 1e6
    print(
        f"{name:>6}: drained {len(lines)} events in {seconds:.1f} s = {rate:,.0f} events/s"
        f" ({per_event:.0f} us of CPU per event)"
    )
    return rate, per_event


def latency(lines: list[bytes], rate: int, seconds: float, folder: Path) -> list[float]:
    """Event-to-Redis latencies (ms) of every 20th event sent at ``rate`` events/s."""
    with fresh_stack() as (settings, server, client):
        return measure_latency(settings, server, client, lines, rate, seconds, folder)


def measure_latency(
    settings: Settings,
    server: RedisServer,
    client: redis.Redis,
    lines: list[bytes],
    rate: int,
    seconds: float,
    folder: Path,
) -> list[float]:
    settings = settings.model_copy(update={"clock": "wall"})
    worker = start_worker(settings, folder)
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks=1, linger_ms=0)
    prefix = f"{settings.redis_prefix}:u:"
    pending: list[tuple[float, str, Any]] = []
    results: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        watcher = redis.Redis.from_url(server.url, socket_timeout=None)
        while not done.is_set() or pending:
            with lock:
                items = list(pending)
            ready = [(t, u, f) for t, u, f in items if f.is_done]
            if ready:
                pipe = watcher.pipeline(transaction=False)
                for _, user, future in ready:
                    pipe.hget(f"{prefix}{{{user}}}", f"o:{future.value.partition}")
                now = time.monotonic()
                for (sent, user, future), value in zip(ready, pipe.execute(), strict=True):
                    if value is not None and int(value) >= future.value.offset:
                        results.append((now - sent) * 1000)
                        with lock:
                            pending.remove((sent, user, future))
            time.sleep(0.002)
        watcher.close()

    try:
        warm = lines[0]
        user = orjson.loads(warm)["user_id"]
        producer.send(settings.events_topic, key=user.encode(), value=warm).get(timeout=30)
        deadline = time.monotonic() + 120
        while not client.exists(f"{prefix}{{{user}}}") and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker has joined its group and applied the first event
        thread = threading.Thread(target=watch)
        thread.start()
        started = time.monotonic()
        for n, line in enumerate(lines[1 : int(rate * seconds)], start=1):
            while time.monotonic() - started < n / rate:
                time.sleep(0.0005)
            event = orjson.loads(line)
            user = event["user_id"]
            event["ts"] = int(time.time() * 1000)
            future = producer.send(settings.events_topic, key=user.encode(),
                                   value=orjson.dumps(event),
                                   partition=partition_of(user.encode()))  # fmt: skip
            if n % 20 == 0:
                with lock:
                    pending.append((time.monotonic(), user, future))
        producer.flush()
        time.sleep(2)
        done.set()
        thread.join(timeout=30)
    finally:
        producer.close()
        stop_worker(worker)
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, for medians")
    parser.add_argument(
        "--drains", nargs="*", choices=DRAINS, default=DRAINS, help="whose drains to run"
    )
    parser.add_argument("--role", choices=["floor", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "floor":
        asyncio.run(floor_consumer(Settings()))
        return
    if args.role == "naive":
        naive_agent(Settings())
        return

    users = max(10, args.events // 30)
    lines = [line.encode() for line in simulate(SimulationConfig(users=users, days=365, seed=3))]
    lines = lines[: args.events]
    print(f"{len(lines)} simulated events, {users} users, {PARTITIONS} partitions")
    folder = Path(tempfile.mkdtemp(prefix="tagger-bench-"))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in args.drains}
    for _ in range(args.rounds):  # interleaved, so that a slow spell hits all three
        for name, measured in runs.items():
            measured.append(drain(name, lines, folder))
    median = {name: statistics.median(r for r, _ in each) for name, each in runs.items()}
    for name, rate in median.items():
        cpu = statistics.median(c for _, c in runs[name])
        print(f"median {name:>5}: {rate:,.0f} events/s ({cpu:.0f} us of CPU per event)")
    if {"ours", "naive"} <= median.keys():
        print(f"ours / naive: {median['ours'] / median['naive']:.1f}x")
    if {"ours", "floor"} <= median.keys():
        print(f"ours / floor: {median['ours'] / median['floor']:.0%}")
    p50s, p99s = [], []
    for _ in range(args.rounds):
        found = latency(lines, args.rate, args.seconds, folder)
        if not found:
            print("latency: no samples, see the worker log")
            continue
        p50s.append(statistics.median(found))
        p99s.append(percentile(found, 0.99))
        print(f"latency at {args.rate} events/s ({len(found)} samples): "
              f"p50 {p50s[-1]:.0f} ms, p99 {p99s[-1]:.0f} ms")  # fmt: skip
    if p99s:
        print(f"median latency at {args.rate} events/s: p50 {statistics.median(p50s):.0f} ms, "
              f"p99 {statistics.median(p99s):.0f} ms")  # fmt: skip
    print(f"logs: {folder}")


if __name__ == "__main__":
    main()

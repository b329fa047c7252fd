"""`tagger demo`: the whole product on this machine, with nothing installed beforehand.

Starts a Kafka-protocol broker (tansu) and a redis-server on free loopback ports, a worker
(`tagger run`, on event time), and the simulator producing at a steady rate; prints tag
changes, transitions and alerts as they come, with a running summary. Everything it
started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson
from kafka import KafkaConsumer, KafkaProducer

from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker, stop_process
from streams.topics import ensure_topics
from taggers.display import describe_output
from taggers.ruleset import load_rules
from taggers.settings import Settings
from taggers.simulate import SimulationConfig, simulate

SUMMARY_EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs: for how long, how fast, and which simulated shop."""

    duration: float | None = None  # seconds; None: until Ctrl-C
    rate: int = 300  # events per second
    users: int = 2000
    days: int = 365
    seed: int = 1
    malformed: float = 0.005
    show: int = 20  # most output lines printed per second (the summary counts them all)


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the exit code. Stops everything it started, whatever happens."""
    folder = tempfile.TemporaryDirectory(prefix="tagger-demo-")
    worker: subprocess.Popen[bytes] | None = None
    try:
        print("starting a local broker (tansu) and redis-server ...", file=out, flush=True)
        with TansuBroker() as broker, RedisServer() as redis_server:
            settings = Settings(
                broker_url=broker.url,
                redis_url=redis_server.url,
                partitions=4,
                fetch_max_wait_ms=100,
                session_timeout=10,
                clock="event",
                sweep_interval=0.5,
                web_port=free_port(),
                web_bind="127.0.0.1",
            )
            ensure_topics(settings)
            log_path = Path(folder.name, "worker.log")
            worker = start_worker(settings, log_path.parent)
            web = f"http://127.0.0.1:{settings.web_port}"
            print(
                f"worker started (log: {log_path}); profiles at {web}/profiles/<user_id>, "
                f"metrics at {web}/metrics",
                file=out,
                flush=True,
            )
            _stream(settings, options, worker, out)
    except KeyboardInterrupt:
        print("\nstopping ...", file=out, flush=True)
    finally:
        stop_process(worker, timeout=15)
        folder.cleanup()
    print("stopped: broker, redis-server and worker are gone.", file=out, flush=True)
    return 0


def _lines(options: DemoOptions) -> Iterator[str]:
    config = SimulationConfig(
        users=options.users, days=options.days, seed=options.seed, malformed=options.malformed
    )
    yield from simulate(config)


def _stream(
    settings: Settings, options: DemoOptions, worker: subprocess.Popen[bytes], out: TextIO
) -> None:
    producer = KafkaProducer(**client_options(settings), linger_ms=20)
    consumer = KafkaConsumer(
        settings.tag_changes_topic,
        settings.transitions_topic,
        settings.alerts_topic,
        settings.dlq_topic,
        **client_options(settings),
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    types = load_rules(settings.resolved_rules_dir()).types  # what the worker runs
    counts: Counter[str] = Counter()
    started = time.monotonic()
    next_summary = started + SUMMARY_EVERY_SECONDS
    lines = _lines(options)
    produced = 0
    try:
        while options.duration is None or time.monotonic() - started < options.duration:
            if worker.poll() is not None:
                print("the worker stopped unexpectedly; see its log", file=out, flush=True)
                return
            due = int((time.monotonic() - started) * options.rate)
            for line in lines:
                key = _key(line)
                producer.send(settings.events_topic, key=key, value=line.encode())
                produced += 1
                if produced >= due:
                    break
            shown = 0
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    data = orjson.loads(record.value)
                    if record.topic == settings.dlq_topic:
                        counts["dead letters"] += 1
                        continue
                    counts[data["kind"]] += 1
                    if data["kind"] == "alert":
                        counts[f"alert {data['name']}"] += 1
                    if shown < options.show:
                        print(describe_output(data, types), file=out)
                        shown += 1
            out.flush()
            if time.monotonic() >= next_summary:
                next_summary += SUMMARY_EVERY_SECONDS
                _summary(out, produced, counts, time.monotonic() - started)
    finally:
        producer.close()
        consumer.close()


def _key(line: str) -> bytes | None:
    try:
        return str(orjson.loads(line)["user_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _summary(out: TextIO, produced: int, counts: Counter[str], elapsed: float) -> None:
    alerts = ", ".join(f"{k[6:]}={v}" for k, v in sorted(counts.items()) if k.startswith("alert "))
    print(
        f"== {elapsed:5.0f}s  events sent {produced}  tag changes {counts['tag_change']}"
        f"  transitions {counts['transition']}  alerts {counts['alert']} ({alerts or '-'})"
        f"  dead letters {counts['dead letters']}",
        file=out,
        flush=True,
    )

"""How throughput grows with workers and partitions: 1, 2 and 3 `tagger run` processes
in one consumer group over 8 partitions (or others), on the local stack (tansu broker,
redis-server).

    python bench/scale_out.py [--events 40000] [--rounds 3] [--workers 1 2 3]
                              [--partitions 8]

Per measurement: a fresh broker and Redis, the workers started and their group settled
(every input partition assigned) before any event is sent; then the events are sent (keyed
by user, as `tagger produce` does) and the clock runs from the first send to the last
event of every partition applied in Redis. Rounds are interleaved, so a slow spell of this
noisy machine hits every worker count; the medians and their ratios to one worker are
printed. Everything runs on this one machine: workers share its cores with the broker,
Redis and the producer, so the numbers show how the work spreads, not a cluster's capacity.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker
from streams.topics import ensure_topics
from taggers.simulate import SimulationConfig, simulate

# The test scaffolding (tests/support) is not installed: import it from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.stack import (
    all_applied,
    assigned_partitions,
    pipeline_settings,
    produce,
    stop_worker,
    wait_for,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(lines: list[str | bytes], workers: int, partitions: int, folder: Path) -> float:
    """Events per second that ``workers`` workers drain ``lines`` at, over ``partitions``."""
    with TansuBroker() as broker, RedisServer() as server:
        settings = pipeline_settings(broker, server, partitions=partitions, batch_size=1000)
        ensure_topics(settings)
        group = [settings.model_copy(update={"web_port": free_port()}) for _ in range(workers)]
        processes: list[subprocess.Popen[bytes]] = []
        client = redis.Redis.from_url(server.url, socket_timeout=None)
        try:
            for number, member in enumerate(group):
                log_folder = folder / f"{partitions}p-{workers}w-{number}"
                log_folder.mkdir(exist_ok=True)
                processes.append(start_worker(member, log_folder))
            # Both input topics (events, re-keyed), every partition, shared by all.
            wait_for(
                lambda: (
                    all(shares := [assigned_partitions(m) for m in group])
                    and sum(shares) == 2 * partitions
                ),
                180,
                "the group to settle",
            )
            cpu_before = sum(cpu_seconds(p.pid) for p in processes)
            started = time.monotonic()
            produce(settings, lines)
            sent = time.monotonic() - started
            deadline = time.monotonic() + 600
            while not all_applied(client, settings, lines):  # finer than wait_for: it is timed
                if time.monotonic() > deadline:
                    raise TimeoutError("not drained")
                time.sleep(0.05)
            seconds = time.monotonic() - started
            cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
        finally:
            client.close()
            for process in processes:
                stop_worker(process)
    rate = len(lines) / seconds
    print(
        f"{partitions} partitions, {workers} worker(s): {len(lines)} events in {seconds:.1f} s"
        f" = {rate:,.0f} events/s"
        f" (sent in {sent:.1f} s; workers used {cpu / seconds:.2f} cores,"
        f" {cpu / len(lines) * 1e6:.0f} us of CPU per event)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, for medians")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--partitions", type=int, nargs="+", default=[8])
    args = parser.parse_args()
    users = max(10, args.events // 30)
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=users, days=365, seed=3))]
    lines = lines[: args.events]
    print(f"{len(lines)} simulated events, {users} users")
    folder = Path(tempfile.mkdtemp(prefix="tagger-scale-"))
    runs: dict[tuple[int, int], list[float]] = {
        (p, w): [] for p in args.partitions for w in args.workers if w <= p
    }
    for _ in range(args.rounds):  # interleaved, so that a slow spell hits every setup
        for (partitions, workers), rates in runs.items():
            rates.append(measure(lines, workers, partitions, folder))
    median = {setup: statistics.median(rates) for setup, rates in runs.items()}
    base = next(iter(median.values()))
    for (partitions, workers), rate in median.items():
        print(
            f"median, {partitions} partitions, {workers} worker(s): {rate:,.0f} events/s"
            f" ({rate / base:.2f}x the first)"
        )
    print(f"logs: {folder}")


if __name__ == "__main__":
    main()

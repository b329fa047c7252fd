"""What identity costs the engine: a replay of the default pack with about 1% of events
being links (``identify`` merging two profiles of one person), against the same shoppers
met under one id each.

    python bench/identity.py [--users 3000] [--days 180] [--runs 3] [--share 0.01]

Prints, for each stream, events/s of each run and the median (the runs alternate, so
that a noisy neighbour slows both alike), the ratio of the medians, and what one merge
costs: the median time of ``Engine.absorb`` over pairs of real profiles (the two ids of
one shopper, each replayed alone), with the number of state keys they hold. Last, what
the worker's identity partition can do: whole identity changes (all three steps, on the
Redis store) against a ``redis-server`` it starts on a free loopback port.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import redis

from streams.local_stack import RedisServer
from streams.redis_store import RedisStore
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import decode_event
from taggers.identity import Identity
from taggers.outputs import IdentityMerge
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore


def replay_rate(engine: Engine, lines: list[bytes]) -> tuple[float, int]:
    """Events/s of one replay of ``lines``, and the merges it made."""
    started = time.perf_counter()
    merges = sum(1 for out in Replay(engine).run(lines) if isinstance(out, IdentityMerge))
    return len(lines) / (time.perf_counter() - started), merges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.01, help="of events being links")
    args = parser.parse_args()

    plain = SimulationConfig(users=args.users, days=args.days, seed=args.seed)
    base = [line.encode() for line in simulate(plain)]
    # One identify per shopper met under two ids: this share of shoppers makes the share
    # of events asked for.
    shoppers = min(1.0, args.share * len(base) / args.users)
    linked = SimulationConfig(users=args.users, days=args.days, seed=args.seed, identities=shoppers)
    lines = [line.encode() for line in simulate(linked)]
    links = sum(1 for line in lines if b'"type":"identify"' in line)
    print(f"stream: {len(lines)} events, {args.users} users, {args.days} days")
    print(f"links: {links} identify events ({links / len(lines):.2%} of events)")

    rules = load_rules(BUNDLED_RULES)
    alone, together, merges = [], [], 0
    for run in range(1, args.runs + 1):
        rate, _ = replay_rate(Engine(rules), base)
        alone.append(rate)
        rate, merges = replay_rate(Engine(rules), lines)
        together.append(rate)
        print(f"run {run}: one id each {alone[-1]:,.0f} events/s, with links {rate:,.0f}")
    print(f"merges per replay: {merges}")
    ratio = statistics.median(together) / statistics.median(alone)
    print(
        f"median: one id each {statistics.median(alone):,.0f} events/s, "
        f"with links {statistics.median(together):,.0f} events/s (ratio {ratio:.2f})"
    )

    # One merge alone: the two ids of each linked shopper, replayed without the link.
    store = MemoryStore()
    engine = Engine(rules)
    unlinked = [line for line in lines if b'"type":"identify"' not in line]
    for _ in Replay(engine, store).run(unlinked):
        pass
    pairs = [
        (store.get(user), store.get("wx" + user[1:]))
        for user in sorted(store.users())
        if user.startswith("u") and store.get("wx" + user[1:]) is not None
    ]
    timings, keys = [], []
    for survivor, absorbed in pairs:
        assert survivor is not None and absorbed is not None
        mine, theirs = copy.deepcopy(survivor), copy.deepcopy(absorbed)
        keys.append(len(mine.aggs) + len(theirs.aggs))
        now = max(mine.clock, theirs.clock)
        started = time.perf_counter()
        engine.absorb(mine, theirs, now, "bench")
        timings.append(time.perf_counter() - started)
    if timings:
        print(
            f"one merge: {statistics.median(timings) * 1e6:,.0f} µs median over {len(timings)} "
            f"pairs ({statistics.median(keys):.0f} state keys between the two)"
        )
    few = SimulationConfig(users=400, days=args.days, seed=args.seed, identities=1.0)
    on_redis([line.encode() for line in simulate(few)], Engine(rules))


def on_redis(lines: list[bytes], engine: Engine) -> None:
    """Identity changes (each merging a shopper's two ids) as the identity partition runs
    them: change, then its steps on the Redis store; one at a time."""
    links = [line for line in lines if b'"type":"identify"' in line]
    rest = [line for line in lines if b'"type":"identify"' not in line]
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        try:
            store = RedisStore(client)
            for _ in Replay(engine, store).run(rest, flush=False):
                pass
            timings = []
            for line in links:
                event = decode_event(line)
                started = time.perf_counter()
                Identity(engine, store).change(event, f"e:{event.event_id}").apply(store)
                timings.append(time.perf_counter() - started)
        finally:
            client.close()
    print(
        f"identity changes on a local Redis: {statistics.median(timings) * 1000:.2f} ms median, "
        f"{len(timings) / sum(timings):,.0f} changes/s over {len(timings)}"
    )


if __name__ == "__main__":
    main()

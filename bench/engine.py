"""Engine throughput: raw JSON lines in memory -> outputs, default rule pack, one core.

    python bench/engine.py [--users 5000] [--days 180] [--runs 5] [--timezone Asia/Shanghai]

Prints events/s for each run and the median, and rule evaluations per event (counted in a
separate, untimed pass so the counting does not slow the timed runs). Two floors, measured
in the same run on the same lines, show where the time goes: decoding alone (as the replay
decodes, and by the pydantic model alone, without the fast path), and the whole replay with
a one-aggregate rule set (no tags, stages or alerts). Last, the speed of the
recompute after a rule change (``Engine.recompute`` over every profile of the stream).
With ``--timezone`` the pack runs in that time zone (its day buckets are local days).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import streams.core_build  # noqa: F401  (first: TAGGER_PURE_PYTHON=1 picks the pure core)
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import decode_event
from taggers.expr import CompiledExpr
from taggers.replay import Replay
from taggers.ruleset import RuleSet, load_rules
from taggers.simulate import SimulationConfig, simulate


def expressions(rules: RuleSet) -> Iterator[CompiledExpr]:
    """Every compiled expression of a rule set (tags, transitions, alerts, timers)."""
    for tag in rules.tags:
        yield from (e for e in (tag.when, tag.exit_when, tag.value) if e is not None)
    if rules.lifecycle is not None:
        for transitions in rules.lifecycle.by_stage.values():
            for transition in transitions:
                if transition.when is not None:
                    yield transition.when
                if transition.timer is not None:
                    yield transition.timer.after
    for alert in rules.alerts.values():
        if alert.when is not None:
            yield alert.when
        if alert.timer is not None:
            yield alert.timer.after


def count_evaluations(rules: RuleSet, lines: list[bytes]) -> int:
    """Run once with every expression wrapped in a counter; return the number of calls."""
    calls = [0]

    def counted(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def wrapper(values: Any) -> Any:
            calls[0] += 1
            return inner(values)

        return wrapper

    for expression in set(expressions(rules)):
        # Benchmark-only instrumentation of a frozen dataclass.
        object.__setattr__(expression, "evaluate", counted(expression.evaluate))
    for _ in Replay(Engine(rules)).run(lines):
        pass
    return calls[0]


def median_rate(lines: list[bytes], runs: int, work: Callable[[], object]) -> float:
    """Median events/s of ``work`` (which handles all ``lines``) over ``runs`` runs."""
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        rates.append(len(lines) / (time.perf_counter() - started))
    return statistics.median(rates)


def decode_rate(lines: list[bytes], runs: int, *, fast: bool) -> float:
    """Median events/s of decoding every line. Each event is dropped once decoded, as the
    replay drops it: a list of them all would have the garbage collector walk it again and
    again, which cost more than the decoding itself."""

    def work() -> None:
        for line in lines:
            decode_event(line, fast=fast)

    return median_rate(lines, runs, work)


def pack(timezone: str | None) -> RuleSet:
    """The default pack, in ``timezone`` when given."""
    if timezone is None:
        return load_rules(BUNDLED_RULES)
    with tempfile.TemporaryDirectory() as folder:
        copied = Path(folder, "rules")
        shutil.copytree(BUNDLED_RULES, copied, ignore=shutil.ignore_patterns("tests"))
        (copied / "zone.yaml").write_text(f"timezone: {timezone}\n", encoding="utf-8")
        return load_rules(copied)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timezone", help="run the pack in this time zone (default: its own)")
    args = parser.parse_args()

    config = SimulationConfig(users=args.users, days=args.days, seed=args.seed)
    lines = [line.encode() for line in simulate(config)]
    print(f"stream: {len(lines)} events, {args.users} users, {args.days} days (seed {args.seed})")

    rules = pack(args.timezone)
    print(f"time zone: {rules.timezone}")
    rates = []
    outputs = 0
    for run in range(1, args.runs + 1):
        replay = Replay(Engine(rules))
        started = time.perf_counter()
        outputs = sum(1 for _ in replay.run(lines))
        elapsed = time.perf_counter() - started
        rates.append(len(lines) / elapsed)
        print(f"run {run}: {rates[-1]:,.0f} events/s ({elapsed:.2f} s, {outputs} outputs)")
    print(f"median: {statistics.median(rates):,.0f} events/s over {args.runs} runs")
    store = replay.store
    profiles = list(store.load(list(store.users())).values())

    decode = decode_rate(lines, args.runs, fast=True)
    model = decode_rate(lines, args.runs, fast=False)
    print(f"floor, decoding alone: {decode:,.0f} events/s")
    print(f"floor, decoding alone by the model: {model:,.0f} events/s ({decode / model:.2f}x)")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "rules.yaml").write_text('aggregates: {events: {count: "*"}}\n')
        bare = load_rules(folder)
        replay_bare = median_rate(
            lines, args.runs, lambda: sum(1 for _ in Replay(Engine(bare)).run(lines))
        )
    print(f"floor, replay with one aggregate and no rules: {replay_bare:,.0f} events/s")

    evaluations = count_evaluations(pack(args.timezone), lines)
    print(f"rule evaluations per event: {evaluations / len(lines):.2f}")

    engine = Engine(rules)
    recomputes = []
    for _ in range(args.runs):
        copies = copy.deepcopy(profiles)  # untimed: a recompute changes nothing twice
        started = time.perf_counter()
        for profile in copies:
            engine.recompute(profile)
        recomputes.append(len(copies) / (time.perf_counter() - started))
    print(f"recompute: {statistics.median(recomputes):,.0f} users/s (median of {args.runs})")


if __name__ == "__main__":
    main()

"""``tagger replay`` and ``tagger simulate``: events through the engine, with no broker
and no Redis, and a synthetic shop stream to feed it."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any

import orjson

from streams.cli.common import (
    RULES_HELP,
    fraction,
    input_lines,
    load_or_report,
    moment,
    positive,
    rules_dir,
    start_time,
)
from streams.settings import load_settings
from taggers.display import OutputTally, describe_output, display_zone
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import to_epoch_ms
from taggers.outputs import OUTPUT_KINDS, Output, output_to_dict
from taggers.profile_record import profile_record
from taggers.replay import BadLine, Replay
from taggers.ruleset import RuleSet
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore

if TYPE_CHECKING:
    from streams.cli.common import Commands


def register(commands: Commands) -> None:
    """Add ``tagger replay`` and ``tagger simulate``."""
    replay = commands.add_parser("replay", help="run events (JSON lines) through the engine")
    replay.add_argument("events", help="a JSON-lines file, or - for standard input")
    replay.add_argument("--rules", help=RULES_HELP)
    replay.add_argument("--json", action="store_true", help="print JSON lines with a `kind`")
    replay.add_argument("-q", "--quiet", action="store_true", help="only the summary")
    replay.add_argument(
        "--until",
        help="let time pass after the last event up to this time (ISO-8601 or epoch ms):"
        " the deadlines due by then fire (timers, windows, calendar dates)",
    )
    replay.add_argument(
        "--now",
        help="when the events were sent (ISO-8601 or epoch ms; default: now): events dated "
        "more than TAGGER_MAX_FUTURE_SKEW after it are bad lines (`future`)",
    )
    replay.set_defaults(func=cmd_replay)

    sim = commands.add_parser("simulate", help="print a synthetic shop stream as JSON lines")
    sim.add_argument("--users", type=positive, default=1000)
    sim.add_argument("--days", type=positive, default=180)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--start",
        type=start_time,
        help="time of the first day: ISO-8601 with a time zone, or 'now' for a history "
        "that ends now (default 2026-01-01T00:00:00Z)",
    )
    sim.add_argument(
        "--malformed",
        type=fraction,
        default=0.0,
        help="share of extra malformed lines mixed in (0..1); every good event stays",
    )
    for name, meaning in (
        ("identities", "met under a second id first (wx + number), then linked by an identify"),
        ("forgets", "who ask to be forgotten (their events stop then)"),
        ("opt-outs", "who opt out of marketing"),
    ):
        sim.add_argument(f"--{name}", type=fraction, default=0.0, help=f"share of users {meaning}")
    sim.set_defaults(func=cmd_simulate)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run an event file through the engine with an in-memory store."""
    rules = load_or_report(rules_dir(args.rules), sys.stderr)
    if rules is None:
        return 1
    engine = Engine(rules)
    store = MemoryStore()
    settings = load_settings()
    # The lines were sent by now (or --now): an event dated past it by more than the
    # skew is a `future` bad line, as the worker makes it a dead letter.
    try:
        sent_at = int(time.time() * 1000) if args.now is None else moment(args.now)
    except ValueError as error:
        print(f"error: --now: {error}", file=sys.stderr)
        return 2
    try:
        until = None if args.until is None else moment(args.until)
    except ValueError as error:
        print(f"error: --until: {error}", file=sys.stderr)
        return 2
    replay = Replay(
        engine,
        store,
        max_event_bytes=settings.max_event_bytes,
        sent_at=sent_at,
        max_future_skew_ms=int(settings.max_future_skew * 1000),
    )
    out = sys.stdout.buffer
    tally, bad_lines = OutputTally(), 0
    try:
        for item in replay.run(input_lines(args.events), until=until):
            if isinstance(item, BadLine):
                bad_lines += 1
            _write_item(item, args, rules, tally, out)
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file", file=sys.stderr)
        return 1
    users = [p for u in store.users() if (p := store.get(u)) is not None]
    if args.json:
        _write_profiles(users, engine, replay, out)
    else:
        _summary(tally, bad_lines, users, rules, replay.skipped)
    return 0


def _write_item(
    item: Output | BadLine,
    args: argparse.Namespace,
    rules: RuleSet,
    tally: OutputTally,
    out: IO[bytes],
) -> None:
    """Count one output, and print it or a bad line as ``--json`` and ``--quiet`` say."""
    if isinstance(item, BadLine):
        record = {
            "kind": "error",
            "line": item.line,
            "reason": item.reason,
            "message": item.message,
        }
        if args.json:
            out.write(orjson.dumps(record) + b"\n")
        else:
            sys.stderr.write(f"line {item.line}: {item.reason}: {item.message}\n")
        return
    output = output_to_dict(item)
    tally.add(output)
    if args.json:
        out.write(orjson.dumps(output) + b"\n")
    elif not args.quiet:
        line = describe_output(output, rules.types, display_zone(rules))
        out.write((line + "\n").encode())


def _write_profiles(users: Sequence[Any], engine: Engine, replay: Replay, out: IO[bytes]) -> None:
    """The ``--json`` ending: each user's profile, then the values skipped per aggregate."""
    for profile in sorted(users, key=lambda p: p.user_id):
        record = profile_record(engine, profile, replay.clock)
        out.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    for name, count in sorted(replay.skipped.items()):
        record = {"kind": "skipped", "aggregate": name, "values": count}
        out.write(orjson.dumps(record) + b"\n")


def _summary(
    tally: OutputTally,
    bad_lines: int,
    users: Sequence[Any],
    rules: RuleSet,
    skipped: Counter[str],
) -> None:
    stages = Counter(p.stage for p in users)
    tags = Counter(t for p in users for t in p.tags)
    print(f"\n== {len(users)} users, rules version {rules.version}", file=sys.stderr)
    for kind in OUTPUT_KINDS:
        if kind.summary_when_none or tally.kinds[kind.name]:
            print(f"   {kind.name}: {tally.kinds[kind.name]}", file=sys.stderr)
    print(f"   bad lines: {bad_lines}", file=sys.stderr)
    for kind in OUTPUT_KINDS:
        for value, count in tally.by(kind):
            print(f"     {value}: {count}", file=sys.stderr)
    print("   stages: " + ", ".join(f"{s}={n}" for s, n in stages.most_common()), file=sys.stderr)
    print("   top tags: " + ", ".join(f"{t}={n}" for t, n in tags.most_common(12)), file=sys.stderr)
    if skipped:
        # A value of the wrong type (a sum given text) is not zero: say which aggregates.
        print(
            "   values skipped (wrong type): "
            + ", ".join(f"{name}={n}" for name, n in sorted(skipped.items())),
            file=sys.stderr,
        )


def cmd_simulate(args: argparse.Namespace) -> int:
    """Print a synthetic shop stream as JSON lines."""
    config = SimulationConfig(
        users=args.users,
        days=args.days,
        seed=args.seed,
        malformed=args.malformed,
        identities=args.identities,
        forgets=args.forgets,
        opt_outs=args.opt_outs,
    )
    if args.start == "now":  # the history ends now: a feed for workers on the wall clock
        config = replace(config, start_ms=int(time.time() * 1000) - args.days * DAY_MS)
    elif args.start is not None:
        config = replace(config, start_ms=to_epoch_ms(args.start))
    out = sys.stdout
    for line in simulate(config):
        out.write(line)
        out.write("\n")
    return 0

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
    add_progress_option,
    add_rules_option,
    command,
    file_size,
    fraction,
    input_lines,
    load_or_report,
    moment,
    positive,
    progress_line,
    rules_dir,
    start_time,
)
from streams.cli.summary import by_count, section
from streams.settings import load_settings
from streams.work_progress import ProgressLine, counted
from taggers.display import OutputTally, describe_output, display_zone, json_values
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import to_epoch_ms
from taggers.outputs import OUTPUT_KINDS, Output, output_to_dict
from taggers.replay import BadLine, Replay
from taggers.ruleset import RuleSet
from taggers.simulate import DEFAULT_START, SimulationConfig, simulate
from taggers.store import MemoryStore

if TYPE_CHECKING:
    from streams.cli.common import Commands


def register(commands: Commands) -> None:
    """Add ``tagger replay`` and ``tagger simulate``."""
    replay = command(
        commands,
        "replay",
        help="run events (JSON lines) through the engine, with no broker and no Redis",
        example=[
            "tagger replay events.jsonl --rules rules/ -q",
            "tagger simulate --users 300 --days 240 --seed 7 | tagger replay - --json",
        ],
    )
    replay.add_argument(
        "events", metavar="EVENTS", help="a JSON-lines file, or - for standard input"
    )
    add_rules_option(replay)
    replay.add_argument(
        "--json", action="store_true", help="print JSON lines with a `kind` (default: text)"
    )
    replay.add_argument(
        "-q", "--quiet", action="store_true", help="print only the summary (default: every output)"
    )
    replay.add_argument(
        "--until",
        metavar="WHEN",
        help="let time pass after the last event up to this time (ISO-8601 or epoch ms):"
        " the deadlines due by then fire (timers, windows, calendar dates; default: stop at"
        " the last event's time)",
    )
    replay.add_argument(
        "--now",
        metavar="WHEN",
        help="when the events were sent (ISO-8601 or epoch ms; default: now): events dated "
        "more than TAGGER_MAX_FUTURE_SKEW after it are bad lines (`future`)",
    )
    add_progress_option(replay, "when standard error is a terminal and standard output is not")
    replay.set_defaults(func=cmd_replay)

    sim = command(
        commands,
        "simulate",
        help="print a synthetic shop stream as JSON lines, the same for the same seed",
        example="tagger simulate --users 300 --days 240 --seed 7 --identities 0.3 > events.jsonl",
    )
    sim.add_argument("--users", type=positive, default=1000, help="how many users")
    sim.add_argument("--days", type=positive, default=180, help="how many days of history")
    sim.add_argument("--seed", type=int, default=1, help="the seed: the same seed, the same stream")
    sim.add_argument(
        "--start",
        metavar="WHEN",
        type=start_time,
        help="time of the first day: ISO-8601 with a time zone, or 'now' for a history "
        f"that ends now (default: {DEFAULT_START})",
    )
    sim.add_argument(
        "--malformed",
        type=fraction,
        default=0.0,
        metavar="SHARE",
        help="share of extra malformed lines mixed in (0..1); every good event stays",
    )
    for name, meaning in (
        ("identities", "met under a second id first (wx + number), then linked by an identify"),
        ("forgets", "who ask to be forgotten (their events stop then)"),
        ("opt-outs", "who opt out of marketing"),
    ):
        sim.add_argument(
            f"--{name}",
            type=fraction,
            default=0.0,
            metavar="SHARE",
            help=f"share of users {meaning}",
        )
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
    # On a terminal the outputs printed on standard output would tear the progress line.
    auto = sys.stderr.isatty() and (args.quiet or not sys.stdout.isatty())
    progress = progress_line(args.progress, "replay", file_size(args.events), auto=auto)
    lines = input_lines(args.events)
    out = sys.stdout.buffer
    tally, bad_lines = OutputTally(), 0
    try:
        for item in replay.run(
            lines if progress is None else counted(lines, progress), until=until
        ):
            if isinstance(item, BadLine):
                bad_lines += 1
            _write_item(item, args, rules, tally, out, progress)
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.finish()
    users = [p for u in store.users() if (p := store.get(u)) is not None]
    if args.json:
        _write_profiles(users, engine, replay, out)
    else:
        out.flush()  # the outputs before the summary, when both go to one terminal
        sys.stderr.write(replay_summary(tally, bad_lines, users, rules, replay.skipped))
    return 0


def _write_item(
    item: Output | BadLine,
    args: argparse.Namespace,
    rules: RuleSet,
    tally: OutputTally,
    out: IO[bytes],
    progress: ProgressLine | None,
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
        elif progress is not None:
            progress.note(f"line {item.line}: {item.reason}: {item.message}")
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
        record = {
            "kind": "profile",
            "user_id": profile.user_id,
            "ids": profile.ids,
            "stage": profile.stage,
            "tags": sorted(profile.tags),
            "aggregates": json_values(
                engine.aggregate_values(profile, replay.clock), engine.rules.types
            ),
        }
        out.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    for name, count in sorted(replay.skipped.items()):
        record = {"kind": "skipped", "aggregate": name, "values": count}
        out.write(orjson.dumps(record) + b"\n")


def replay_summary(
    tally: OutputTally,
    bad_lines: int,
    users: Sequence[Any],
    rules: RuleSet,
    skipped: Counter[str],
) -> str:
    """The summary at the end of a replay: the outputs by kind (and alerts by name), then
    every stage and every tag with how many users end with it, in columns."""
    stages = Counter(p.stage for p in users)
    tags = Counter(t for p in users for t in p.tags)
    counts = [
        f"{kind.name} {tally.kinds[kind.name]:,}"
        for kind in OUTPUT_KINDS
        if kind.summary_when_none or tally.kinds[kind.name]
    ]
    lines = [
        "",
        f"== {len(users):,} users, rules version {rules.version}",
        "outputs: " + ", ".join(counts) + f"; bad lines {bad_lines:,}",
    ]
    for kind in OUTPUT_KINDS:
        if kind.tally is not None:
            lines += section(
                f"{kind.plural} by {kind.tally}", by_count(Counter(dict(tally.by(kind))))
            )
    if rules.lifecycle:
        lines += section("users by stage", by_count(stages))
    lines += section("users by tag", by_count(tags))
    if skipped:
        # A value of the wrong type (a sum given text) is not zero: say which aggregates.
        lines += section("values skipped (wrong type) by aggregate", sorted(skipped.items()))
    return "\n".join(lines) + "\n"


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

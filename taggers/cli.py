"""The ``tagger`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from taggers.display import OutputTally, describe_output, format_value, format_values
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import event_json_schema, to_epoch_ms
from taggers.outputs import OUTPUT_KINDS, output_to_dict
from taggers.replay import BadLine, Replay
from taggers.rulediff import SAMPLE_SIZE, diff_outcomes, new_aggregates, state_name
from taggers.rulefile import RuleFile
from taggers.ruleset import RuleSet, load_rules, rules_version
from taggers.ruletests import run_tests
from taggers.settings import SettingsError, load_settings, unknown_variables
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from taggers.yaml_source import RuleSetError


def _rules_dir(given: str | None) -> Path:
    return Path(given) if given else load_settings().resolved_rules_dir()


def _load(directory: Path, err: IO[str]) -> RuleSet | None:
    try:
        return load_rules(directory)
    except RuleSetError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=err)
        print(f"{len(error.problems)} problem(s) in {directory}; nothing was loaded", file=err)
        return None


def cmd_rules_check(args: argparse.Namespace) -> int:
    """Validate a rule directory."""
    rules = _load(_rules_dir(args.dir), sys.stderr)
    if rules is None:
        return 1
    stages = len(rules.lifecycle.stages) if rules.lifecycle else 0
    visible = [n for n in rules.aggregates if not n.startswith("_")]
    print(
        f"ok: {rules.directory}: {len(visible)} aggregates, {len(rules.tags)} tags,"
        f" {stages} stages, {len(rules.alerts)} alerts (version {rules.version})"
    )
    if args.against:
        live = _load(Path(args.against), sys.stderr)
        if live is None:
            return 1
        for notice in new_aggregates(live, rules):
            print(f"note: {notice}")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    """Run the rule tests of a rule directory (its tests/ folder)."""
    directory = _rules_dir(args.dir)
    rules = _load(directory, sys.stderr)
    if rules is None:
        return 1
    tests_dir = directory / "tests"
    try:
        results = run_tests(rules, tests_dir)
    except RuleSetError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    failed = [r for r in results if not r.passed]
    for result in results:
        if result.passed:
            if args.verbose:
                print(f"PASS {result.name}")
            continue
        print(f"FAIL {result.name} ({result.where})")
        for failure in result.failures:
            print(f"  {failure}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if not results:
        print(f"no tests found in {tests_dir}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def cmd_rules_diff(args: argparse.Namespace) -> int:
    """Replay events under two rule directories; who gains or loses each tag, stage, alert."""
    old = _load(Path(args.old), sys.stderr)
    new = _load(Path(args.new), sys.stderr)
    if old is None or new is None:
        return 1
    if args.events == "-":
        lines = list(sys.stdin.buffer)  # read once, replayed twice
        result = diff_outcomes(old, new, lambda: lines)
    else:
        path = Path(args.events)
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 1
        result = diff_outcomes(old, new, lambda: _input_lines(args.events))
    if args.json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"{result.users} users, {result.events} events applied"
        f" ({result.bad_lines} bad lines): version {result.old_version} -> {result.new_version}"
    )
    sections = (("tag", result.tags, _tag_display(new)), ("stage", result.stages, _stages(new)))
    for kind, changes, names in (*sections, ("alert", result.alerts, _alerts(new))):
        for name, change in sorted(changes.items()):
            label = f"{kind} {name}" + (f" ({names[name]})" if names.get(name) else "")
            print(f"  {label}: +{len(change.gain)} -{len(change.lose)}")
            for sign, users in (("+", change.gain), ("-", change.lose)):
                if users:
                    print(f"      {sign} {_sample(users)}")
            if change.backfill:
                needs = ", ".join(sorted(state_name(n) for n in change.needs))
                print(
                    f"      ! {len(change.backfill)} of them only after a backfill (the live"
                    f" profiles never kept {needs}): {_sample(change.backfill)}"
                )
    if not (result.tags or result.stages or result.alerts):
        print("  no user's tags, stage or alerts change")
    if any(c.backfill for cs in (result.tags, result.stages, result.alerts) for c in cs.values()):
        print(
            "note: the counts are these events replayed under the new rules from the start;"
            " the live deployment keeps its profiles and reaches the users marked ! only"
            " after a backfill (docs/rules.md, Backfilling a new aggregate)"
        )
    for notice in result.notices:
        print(f"note: {notice}")
    return 0


def _sample(users: set[str]) -> str:
    """The first ids, by id, and how many more."""
    sample = " ".join(sorted(users)[:SAMPLE_SIZE])
    more = len(users) - SAMPLE_SIZE
    return sample + (f" (+{more} more)" if more > 0 else "")


def cmd_rules_status(args: argparse.Namespace) -> int:
    """What the deployment runs: each worker's rule-set version and last rejection, and
    the progress of the recompute (from Redis); and the local rule directory's version."""
    import dataclasses  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from taggers.redis_store import client_for  # noqa: PLC0415
    from taggers.rules_board import RulesBoard  # noqa: PLC0415

    settings = load_settings()
    directory = Path(args.dir) if args.dir else settings.resolved_rules_dir()
    try:
        local: str | None = rules_version(directory)
    except OSError:
        local = None
    try:
        board = RulesBoard(client_for(settings, timeout=5), settings.redis_prefix)
        workers, recompute = board.workers(), board.recompute()
    except redis.RedisError as error:
        print(f"tagger rules status: cannot use Redis (TAGGER_REDIS_URL): {error}", file=sys.stderr)
        return 1
    if args.json:
        report = {
            "directory": str(directory),
            "directory_version": local,
            "workers": [dataclasses.asdict(w) for w in workers],
            "recompute": dataclasses.asdict(recompute) if recompute else None,
        }
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"rule directory {directory}: version {local or '(unreadable)'}")
    if not workers:
        print("no worker has reported (none running, or another TAGGER_REDIS_PREFIX)")
    for worker in workers:
        print(
            f"worker {worker.worker}: version {worker.version} live since {worker.loaded_at}"
            f" (last seen {_ago(worker.seen_at)}, rules from {worker.directory})"
        )
        if worker.rejected is not None:
            rejected = worker.rejected
            print(
                f"  last rejected: version {rejected.version} at {rejected.at},"
                f" {len(rejected.problems)} problem(s):"
            )
            for problem in rejected.problems:
                print(f"    {problem}")
    versions = {worker.version for worker in workers}
    if len(versions) > 1:
        listed = ", ".join(sorted(versions))
        print(f"warning: the workers run {len(versions)} different versions: {listed}")
    if recompute is None:
        print("recompute: none yet")
    else:
        state = "running" if recompute.running else f"done at {recompute.finished_at}"
        print(
            f"recompute for version {recompute.version} (from {recompute.previous or 'start'}):"
            f" {state}; {recompute.scanned} users re-evaluated, {recompute.changed} changed,"
            f" started {recompute.started_at}"
        )
    return 0


def _ago(iso: str) -> str:
    """How long ago an ISO time was, for people ("12 s ago"); the text itself if it is none."""
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    except (ValueError, TypeError):
        return iso
    return f"{seconds:.0f} s ago"


def _tag_display(rules: RuleSet) -> dict[str, str | None]:
    return {tag.name: tag.display for tag in rules.tags}


def _stages(rules: RuleSet) -> dict[str, str | None]:
    return dict(rules.lifecycle.stages) if rules.lifecycle else {}


def _alerts(rules: RuleSet) -> dict[str, str | None]:
    return {name: alert.display for name, alert in rules.alerts.items()}


def _input_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    with Path(path).open("rb") as handle:
        yield from handle


def _moment(text: str) -> int:
    """Epoch ms from ISO-8601 with a time zone, or from epoch ms written as digits."""
    return to_epoch_ms(int(text) if text.isdigit() else text)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run an event file through the engine with an in-memory store."""
    rules = _load(_rules_dir(args.rules), sys.stderr)
    if rules is None:
        return 1
    engine = Engine(rules)
    store = MemoryStore()
    settings = load_settings()
    # The lines were sent by now (or --now): an event dated past it by more than the
    # skew is a `future` bad line, as the worker makes it a dead letter.
    try:
        sent_at = int(time.time() * 1000) if args.now is None else _moment(args.now)
    except ValueError as error:
        print(f"error: --now: {error}", file=sys.stderr)
        return 2
    replay = Replay(
        engine,
        store,
        max_event_bytes=settings.max_event_bytes,
        sent_at=sent_at,
        max_future_skew_ms=int(settings.max_future_skew * 1000),
    )
    try:
        lines = _input_lines(args.events)
        out = sys.stdout.buffer
        tally, bad_lines = OutputTally(), 0
        for item in replay.run(lines):
            if isinstance(item, BadLine):
                bad_lines += 1
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
                continue
            output = output_to_dict(item)
            tally.add(output)
            if args.json:
                out.write(orjson.dumps(output) + b"\n")
            elif not args.quiet:
                out.write((describe_output(output, rules.types) + "\n").encode())
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file", file=sys.stderr)
        return 1
    users = [p for u in store.users() if (p := store.get(u)) is not None]
    if args.json:
        for profile in sorted(users, key=lambda p: p.user_id):
            record = {
                "kind": "profile",
                "user_id": profile.user_id,
                "stage": profile.stage,
                "tags": sorted(profile.tags),
                "aggregates": engine.aggregate_values(profile, replay.clock),
            }
            out.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        for name, count in sorted(replay.skipped.items()):
            record = {"kind": "skipped", "aggregate": name, "values": count}
            out.write(orjson.dumps(record) + b"\n")
        return 0
    _summary(tally, bad_lines, users, rules, replay.skipped)
    return 0


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
        users=args.users, days=args.days, seed=args.seed, malformed=args.malformed
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run the streaming worker against the configured broker and Redis."""
    import redis  # noqa: PLC0415
    from faust.worker import Worker  # noqa: PLC0415  (the worker's imports are heavy)
    from kafka.errors import KafkaError  # noqa: PLC0415

    from streams.app import create_app  # noqa: PLC0415
    from streams.logs import logging_config  # noqa: PLC0415
    from streams.topics import TopicLayoutError, ensure_topics  # noqa: PLC0415
    from taggers.redis_store import redacted  # noqa: PLC0415

    settings = load_settings()
    for name in unknown_variables():
        print(f"tagger run: ignoring {name}: no such setting", file=sys.stderr)
    directory = Path(args.rules) if args.rules else settings.resolved_rules_dir()
    rules = _load(directory, sys.stderr)
    if rules is None:
        return 1
    try:
        ensure_topics(settings)
        app = create_app(settings, rules, directory)
    except TopicLayoutError as error:
        print(f"tagger run: {error}", file=sys.stderr)
        return 1
    except KafkaError as error:
        print(
            f"tagger run: cannot use the broker ({redacted(settings.broker_url)}): {error}",
            file=sys.stderr,
        )
        return 1
    except redis.RedisError as error:
        # The URL may hold a password: name the variable, not its value.
        print(f"tagger run: cannot use Redis (TAGGER_REDIS_URL): {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a TLS file (CA, certificate, key) that cannot be read
        print(f"tagger run: {error.strerror}: {error.filename}", file=sys.stderr)
        return 1
    # Our formatter, in place of mode's (which drops the fields a call passes in extra=).
    log_config = logging_config(settings.log_format, args.loglevel)
    worker = Worker(app, loglevel=args.loglevel.upper(), quiet=True, logging_config=log_config)
    # At WARNING and above Faust's progress spinner sets the root logger to DEBUG so that
    # every debug record turns it: a LogRecord per message sent (measured: a third of
    # the cost of sending an output).
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    """Send an event file to the events topic, keyed by user id."""
    from kafka.errors import KafkaError  # noqa: PLC0415

    from streams.produce import produce_lines  # noqa: PLC0415
    from taggers.redis_store import redacted  # noqa: PLC0415

    settings = load_settings()
    try:
        sent = produce_lines(settings, _input_lines(args.events), rate=args.rate)
    except FileNotFoundError as error:
        print(f"error: {error.filename}: no such file", file=sys.stderr)
        return 1
    except KafkaError as error:
        print(
            f"tagger produce: cannot use the broker ({redacted(settings.broker_url)}): {error}",
            file=sys.stderr,
        )
        return 1
    print(f"sent {sent} events to {settings.events_topic}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the product locally: broker, Redis, worker and simulator, all started here."""
    from streams.demo import DemoOptions, run_demo  # noqa: PLC0415
    from streams.local_stack import ServerError  # noqa: PLC0415

    # Absolute before anything starts: the worker runs in a folder of its own.
    directory = _rules_dir(args.rules).absolute()
    rules = _load(directory, sys.stderr)
    if rules is None:
        return 1
    options = DemoOptions(
        rules_dir=directory,
        duration=args.duration,
        rate=args.rate,
        users=args.users,
        seed=args.seed,
    )
    try:
        return run_demo(options, rules)
    except ServerError as error:  # a server of the local stack could not start
        print(f"tagger demo: {error}", file=sys.stderr)
        return 1


def cmd_profile(args: argparse.Namespace) -> int:
    """Print one user's profile from Redis: stage, tags with reasons, aggregates."""
    from taggers.redis_store import RedisStore, client_for, redacted  # noqa: PLC0415

    settings = load_settings()
    rules = _load(_rules_dir(args.rules), sys.stderr)
    if rules is None:
        return 1
    import redis  # noqa: PLC0415

    where = redacted(settings.redis_url)
    try:
        store = RedisStore(client_for(settings), prefix=settings.redis_prefix)
        profile = store.load([args.user_id]).get(args.user_id)
    except redis.RedisError as error:  # its text names host and port, never the password
        print(f"error: cannot read from Redis at {where}: {error}", file=sys.stderr)
        return 1
    if profile is None:
        print(f"no profile for user {args.user_id!r} in {where}", file=sys.stderr)
        return 1
    view = Engine(rules).describe(profile)
    if args.json:
        print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
        return 0
    stage = f"{view['stage']} ({view['stage_display']})" if view["stage_display"] else view["stage"]
    print(f"user {view['user_id']}: stage {stage} since {view['stage_since']}")
    print(f"tags ({len(view['tags'])}):")
    for name, tag in view["tags"].items():
        values = format_values(tag["values"], rules.types)
        label = f" ({tag['display']})" if tag["display"] else ""
        print(f"  {name}{label} since {tag['since']}  because {values or tag['when']}")
    print("aggregates:")
    for name, value in view["aggregates"].items():
        print(f"  {name} = {format_value(value, rules.types.get(name))}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print a JSON Schema."""
    schema = event_json_schema() if args.what == "events" else RuleFile.model_json_schema()
    print(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _start(text: str) -> str:
    """``now`` or an ISO-8601 time with a time zone (checked here, resolved when run)."""
    if text != "now":
        try:
            to_epoch_ms(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "must be 'now' or an ISO-8601 time with a time zone, e.g. 2026-01-01T00:00:00Z"
            ) from None
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tagger``."""
    parser = argparse.ArgumentParser(prog="tagger", description="Real-time user tagging engine")
    commands = parser.add_subparsers(dest="command", required=True)

    rules = commands.add_parser("rules", help="check and test rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate a rule directory")
    check.add_argument(
        "dir", nargs="?", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)"
    )
    check.add_argument(
        "--against",
        metavar="LIVE_DIR",
        help="also name the aggregates the rules live now never kept (they start empty)",
    )
    check.set_defaults(func=cmd_rules_check)
    diff = rules_commands.add_parser(
        "diff", help="replay events under two rule directories: who gains or loses what"
    )
    diff.add_argument("old", metavar="OLD_DIR", help="the rules live now")
    diff.add_argument("new", metavar="NEW_DIR", help="the rules to compare")
    diff.add_argument(
        "--events", required=True, help="a JSON-lines event file, or - for standard input"
    )
    diff.add_argument("--json", action="store_true", help="print JSON")
    diff.set_defaults(func=cmd_rules_diff)
    status = rules_commands.add_parser(
        "status", help="what the workers run, the last rejection, and recompute progress"
    )
    status.add_argument(
        "dir", nargs="?", help="rule directory to compare (default: $TAGGER_RULES_DIR, ./rules)"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_rules_status)
    test = rules_commands.add_parser("test", help="run the rule tests in DIR/tests")
    test.add_argument("dir", nargs="?", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.set_defaults(func=cmd_rules_test)

    replay = commands.add_parser("replay", help="run events (JSON lines) through the engine")
    replay.add_argument("events", help="a JSON-lines file, or - for standard input")
    replay.add_argument("--rules", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)")
    replay.add_argument("--json", action="store_true", help="print JSON lines with a `kind`")
    replay.add_argument("-q", "--quiet", action="store_true", help="only the summary")
    replay.add_argument(
        "--now",
        help="when the events were sent (ISO-8601 or epoch ms; default: now): events dated "
        "more than TAGGER_MAX_FUTURE_SKEW after it are bad lines (`future`)",
    )
    replay.set_defaults(func=cmd_replay)

    sim = commands.add_parser("simulate", help="print a synthetic shop stream as JSON lines")
    sim.add_argument("--users", type=_positive, default=1000)
    sim.add_argument("--days", type=_positive, default=180)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--start",
        type=_start,
        help="time of the first day: ISO-8601 with a time zone, or 'now' for a history "
        "that ends now (default 2026-01-01T00:00:00Z)",
    )
    sim.add_argument(
        "--malformed",
        type=_fraction,
        default=0.0,
        help="share of extra malformed lines mixed in (0..1); every good event stays",
    )
    sim.set_defaults(func=cmd_simulate)

    run = commands.add_parser("run", help="run the streaming worker (Kafka in, Redis, Kafka out)")
    run.add_argument("--rules", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)")
    run.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    send = commands.add_parser(
        "produce", help="send events (JSON lines) to the events topic, keyed by user id"
    )
    send.add_argument("events", help="a JSON-lines file, or - for standard input")
    send.add_argument(
        "--rate", type=_positive, help="events per second at most (default: as fast as it can)"
    )
    send.set_defaults(func=cmd_produce)

    demo = commands.add_parser(
        "demo", help="run everything locally (broker, Redis, worker, simulator) and watch"
    )
    demo.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--rate", type=_positive, default=300, help="events per second")
    demo.add_argument("--users", type=_positive, default=2000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--rules", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)")
    demo.set_defaults(func=cmd_demo)

    profile = commands.add_parser("profile", help="print a user's profile from Redis")
    profile.add_argument("user_id")
    profile.add_argument("--rules", help="rule directory (default: $TAGGER_RULES_DIR, ./rules)")
    profile.add_argument("--json", action="store_true", help="print JSON")
    profile.set_defaults(func=cmd_profile)

    schema = commands.add_parser("schema", help="print a JSON Schema")
    schema.add_argument("what", choices=["events", "rules"])
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tagger`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as error:
        print(f"tagger {args.command}: bad settings: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error. Point stdout at devnull so
        # that Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``tagger run``, ``tagger produce``, ``tagger forget`` and ``tagger demo``: the commands
that use a broker.

Their imports (Faust, kafka-python, the worker) are heavy, so each command imports what
it needs when it runs, and the other commands start without them."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli.common import (
    add_rules_option,
    command,
    input_lines,
    load_or_report,
    moment,
    positive,
    rules_dir,
)
from streams.settings import load_settings, unknown_variables
from taggers.events import EventError, forget_event

if TYPE_CHECKING:
    from streams.cli.common import Commands


def register(commands: Commands) -> None:
    """Add ``tagger run``, ``tagger produce``, ``tagger forget`` and ``tagger demo``."""
    run = command(
        commands,
        "run",
        help="run the streaming worker (Kafka in, Redis, Kafka out)",
        example="tagger run --rules rules/ --loglevel warning",
    )
    add_rules_option(run)
    run.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the lowest level of log record written",
    )
    run.set_defaults(func=cmd_run)

    send = command(
        commands,
        "produce",
        help="send events (JSON lines) to the events topic, keyed by user id",
        example="tagger simulate --users 100 | tagger produce - --rate 200",
    )
    send.add_argument("events", metavar="EVENTS", help="a JSON-lines file, or - for standard input")
    send.add_argument(
        "--rate", type=positive, help="events per second at most (default: as fast as it can)"
    )
    send.set_defaults(func=cmd_produce)

    forget = command(
        commands,
        "forget",
        help="delete a person everywhere: send a forget event for one of their ids",
        example="tagger forget u42 --at 2026-03-01T12:00:00Z",
    )
    forget.add_argument("id", help="any id of the person (its own, or one linked to it)")
    forget.add_argument(
        "--at",
        metavar="WHEN",
        help="when the person asked (ISO-8601 with a time zone, or epoch ms; default: now): "
        "their events up to then change nothing",
    )
    forget.set_defaults(func=cmd_forget)

    demo = command(
        commands,
        "demo",
        help="run everything locally (broker, Redis, worker, simulator) and watch it live",
        example=["tagger demo --duration 60 --rate 500", "tagger demo --plain --duration 30"],
    )
    demo.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--rate", type=positive, default=300, help="events per second")
    demo.add_argument("--users", type=positive, default=2000, help="how many simulated users")
    demo.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    add_rules_option(demo)
    demo.add_argument(
        "--plain",
        action="store_true",
        help="print plain lines even on a terminal (where the default is a live view; on "
        "a pipe or a file the lines are always plain)",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the streaming worker against the configured broker and Redis."""
    import redis  # noqa: PLC0415
    from faust.worker import Worker  # noqa: PLC0415  (the worker's imports are heavy)
    from kafka.errors import KafkaError  # noqa: PLC0415

    from streams.app import create_app  # noqa: PLC0415
    from streams.logs import logging_config  # noqa: PLC0415
    from streams.redis_store import redacted  # noqa: PLC0415
    from streams.topics import TopicLayoutError, ensure_topics  # noqa: PLC0415

    settings = load_settings()
    for name in unknown_variables():
        print(f"tagger run: ignoring {name}: no such setting", file=sys.stderr)
    directory = Path(args.rules) if args.rules else settings.resolved_rules_dir()
    rules = load_or_report(directory, sys.stderr)
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
    from streams.redis_store import redacted  # noqa: PLC0415

    settings = load_settings()
    try:
        sent = produce_lines(settings, input_lines(args.events), rate=args.rate)
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


def forget_record(person: str, at: str | None) -> bytes:
    """The value ``tagger forget`` sends: a ``forget`` event for ``person`` with a fresh
    event id, at ``at`` (as the command line gives it) or now. ValueError for a bad time,
    EventError for an invalid id."""
    ts = int(time.time() * 1000) if at is None else moment(at)
    return forget_event(person, ts, f"forget-{uuid.uuid4().hex}")


def cmd_forget(args: argparse.Namespace) -> int:
    """Send a ``forget`` event for an id to the events topic, keyed by that id: the worker
    deletes the person and all its ids (docs/identity.md)."""
    try:
        value = forget_record(args.id, args.at)
    except ValueError as error:
        print(f"tagger forget: --at: {error}", file=sys.stderr)
        return 2
    except EventError as error:
        problem = error.message.removeprefix("user_id: ")
        print(f"tagger forget: not a valid id: {problem}", file=sys.stderr)
        return 2
    from kafka.errors import KafkaError  # noqa: PLC0415

    from streams.produce import produce_lines  # noqa: PLC0415
    from streams.redis_store import redacted  # noqa: PLC0415

    settings = load_settings()
    try:
        produce_lines(settings, [value])
    except KafkaError as error:
        print(
            f"tagger forget: cannot use the broker ({redacted(settings.broker_url)}): {error}",
            file=sys.stderr,
        )
        return 1
    print(f"sent a forget event for {args.id} to {settings.events_topic}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the product locally: broker, Redis, worker and simulator, all started here."""
    from streams.demo import DemoOptions, LiveViewError, run_demo  # noqa: PLC0415
    from streams.local_stack import ServerError  # noqa: PLC0415

    # Absolute before anything starts: the worker runs in a folder of its own.
    directory = rules_dir(args.rules).absolute()
    rules = load_or_report(directory, sys.stderr)
    if rules is None:
        return 1
    options = DemoOptions(
        rules_dir=directory,
        duration=args.duration,
        rate=args.rate,
        users=args.users,
        seed=args.seed,
        plain=args.plain,
    )
    try:
        return run_demo(options, rules)
    # the live view without rich (before anything starts), or a server that cannot start
    except (LiveViewError, ServerError) as error:
        print(f"tagger demo: {error}", file=sys.stderr)
        return 1

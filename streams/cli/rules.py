"""``tagger rules``: check, diff, status and test a rule directory."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from streams.cli import graph
from streams.cli.common import (
    RULES_DEFAULT,
    add_progress_option,
    add_rules_option,
    add_rules_positional,
    command,
    file_size,
    given_rules,
    input_lines,
    load_or_report,
    progress_line,
    rules_dir,
)
from streams.settings import load_settings
from streams.work_progress import counted
from taggers.rulediff import (
    SAMPLE_SIZE,
    Change,
    OutcomeDiff,
    diff_outcomes,
    new_aggregates,
    state_name,
)
from taggers.ruleset import RuleSet, rules_version
from taggers.ruletests import run_tests
from taggers.yaml_source import RuleSetError

if TYPE_CHECKING:
    from streams.cli.common import Commands
    from streams.rules_board import Recompute, WorkerRules


def register(commands: Commands) -> None:
    """Add ``tagger rules`` and its subcommands."""
    rules = command(
        commands,
        "rules",
        help="check, test and compare rule directories; the rules the workers run",
        example=["tagger rules check --rules rules/", "tagger rules test --rules rules/ -v"],
    )
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    check = command(
        rules_commands,
        "check",
        help="validate a rule directory: every problem as file:line:column with a hint",
        example=[
            "tagger rules check --rules rules/",
            "tagger rules check --rules new-rules/ --against rules/",
        ],
    )
    add_rules_option(check)
    add_rules_positional(check)
    check.add_argument(
        "--against",
        metavar="LIVE_DIR",
        help="also name the aggregates the rules live now never kept (they start empty;"
        " default: compare with nothing)",
    )
    check.set_defaults(func=cmd_rules_check)
    register_diff(rules_commands)
    status = command(
        rules_commands,
        "status",
        help="what the workers run, the last rejection, and the recompute's progress (Redis)",
        example=["tagger rules status", "tagger rules status --rules rules/ --json"],
    )
    add_rules_option(status, "the rule directory to compare with what runs (" + RULES_DEFAULT + ")")
    add_rules_positional(status)
    status.add_argument("--json", action="store_true", help="print JSON (default: text)")
    status.set_defaults(func=cmd_rules_status)
    test = command(
        rules_commands,
        "test",
        help="run the rule tests in DIR/tests/*.yaml",
        example="tagger rules test --rules rules/ -v",
    )
    add_rules_option(test)
    add_rules_positional(test)
    test.add_argument(
        "-v", "--verbose", action="store_true", help="list passing tests too (default: failures)"
    )
    test.set_defaults(func=cmd_rules_test)
    graph.register(rules_commands)


def register_diff(rules_commands: Commands) -> None:
    """``tagger rules diff``: the rules of ``--rules`` against the live ones of ``--against``."""
    diff = command(
        rules_commands,
        "diff",
        help="replay events under the live rules and under new ones: who gains or loses what",
        example=[
            "tagger rules diff --rules new-rules/ --against rules/ --events events.jsonl",
            "tagger rules diff --rules new-rules/ --against rules/ --events events.jsonl --json",
        ],
    )
    add_rules_option(diff, "the rules to compare (" + RULES_DEFAULT + ")")
    diff.add_argument(
        "--against",
        metavar="LIVE_DIR",
        help="the rules live now (no default: give it, or OLD_DIR NEW_DIR)",
    )
    diff.add_argument(
        "dirs",
        nargs="*",
        metavar="DIR",
        help="OLD_DIR NEW_DIR: the older spelling of --against OLD_DIR --rules NEW_DIR",
    )
    diff.add_argument(
        "--events",
        metavar="EVENTS",
        required=True,
        help="a JSON-lines event file, or - for standard input",
    )
    diff.add_argument("--json", action="store_true", help="print JSON (default: text)")
    add_progress_option(diff, "when standard error is a terminal")
    diff.set_defaults(func=cmd_rules_diff)


def cmd_rules_check(args: argparse.Namespace) -> int:
    """Validate a rule directory."""
    rules = load_or_report(rules_dir(given_rules(args)), sys.stderr)
    if rules is None:
        return 1
    stages = len(rules.lifecycle.stages) if rules.lifecycle else 0
    visible = [n for n in rules.aggregates if not n.startswith("_")]
    print(
        f"ok: {rules.directory}: {len(visible)} aggregates, {len(rules.tags)} tags,"
        f" {stages} stages, {len(rules.alerts)} alerts (version {rules.version})"
    )
    if args.against:
        live = load_or_report(Path(args.against), sys.stderr)
        if live is None:
            return 1
        for notice in new_aggregates(live, rules):
            print(f"note: {notice}")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    """Run the rule tests of a rule directory (its tests/ folder)."""
    directory = rules_dir(given_rules(args))
    rules = load_or_report(directory, sys.stderr)
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


def diff_dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The live and the new rule directory of ``tagger rules diff``, from ``--against`` and
    ``--rules`` or from the two positional directories (SystemExit 2 if they are not)."""
    if args.dirs and (len(args.dirs) != 2 or args.against or args.rules):
        message = "give OLD_DIR NEW_DIR, or --against LIVE_DIR [--rules DIR]"
    elif args.dirs:
        return Path(args.dirs[0]), Path(args.dirs[1])
    elif args.against:
        return Path(args.against), rules_dir(args.rules)
    else:
        message = "name the rules live now: --against LIVE_DIR"
    print(f"tagger rules diff: {message}", file=sys.stderr)
    raise SystemExit(2)


def cmd_rules_diff(args: argparse.Namespace) -> int:
    """Replay events under two rule directories; who gains or loses each tag, stage, alert."""
    old_dir, new_dir = diff_dirs(args)
    old = load_or_report(old_dir, sys.stderr)
    new = load_or_report(new_dir, sys.stderr)
    if old is None or new is None:
        return 1
    if args.events == "-":
        lines = list(sys.stdin.buffer)  # read once, replayed twice
        size: int | None = sum(len(line) for line in lines)
    else:
        if not Path(args.events).is_file():
            print(f"error: {args.events}: no such file", file=sys.stderr)
            return 1
        size = file_size(args.events)
    # Both replays on one line: the second starts where the first ended.
    total = None if size is None else 2 * size
    progress = progress_line(args.progress, "rules diff", total, auto=sys.stderr.isatty())
    passes = 0

    def read_events() -> Iterable[bytes]:
        nonlocal passes
        read = lines if args.events == "-" else input_lines(args.events)
        passes += 1
        if progress is None:
            return read
        progress.label = f"rules diff, replay {passes} of 2"
        return counted(read, progress, start=(passes - 1) * (size or 0))

    try:
        result = diff_outcomes(old, new, read_events)
    finally:
        if progress is not None:
            progress.finish()
    if args.json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return 0
    _print_diff(result, new)
    return 0


def _print_diff(result: OutcomeDiff, new: RuleSet) -> None:
    print(
        f"{result.users} users, {result.events} events applied"
        f" ({result.bad_lines} bad lines): version {result.old_version} -> {result.new_version}"
    )
    sections = (("tag", result.tags, _tag_display(new)), ("stage", result.stages, _stages(new)))
    for kind, changes, names in (*sections, ("alert", result.alerts, _alerts(new))):
        for name, change in sorted(changes.items()):
            label = f"{kind} {name}" + (f" ({names[name]})" if names.get(name) else "")
            _print_change(label, change)
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


def _print_change(label: str, change: Change) -> None:
    """Who gains and who loses one tag, stage or alert, and who only after a backfill."""
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


def _sample(users: set[str]) -> str:
    """The first ids, by id, and how many more."""
    sample = " ".join(sorted(users)[:SAMPLE_SIZE])
    more = len(users) - SAMPLE_SIZE
    return sample + (f" (+{more} more)" if more > 0 else "")


def _tag_display(rules: RuleSet) -> dict[str, str | None]:
    return {tag.name: tag.display for tag in rules.tags}


def _stages(rules: RuleSet) -> dict[str, str | None]:
    return dict(rules.lifecycle.stages) if rules.lifecycle else {}


def _alerts(rules: RuleSet) -> dict[str, str | None]:
    return {name: alert.display for name, alert in rules.alerts.items()}


def cmd_rules_status(args: argparse.Namespace) -> int:
    """What the deployment runs: each worker's rule-set version and last rejection, and
    the progress of the recompute (from Redis); and the local rule directory's version."""
    import dataclasses  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from streams.redis_store import client_for  # noqa: PLC0415
    from streams.rules_board import RulesBoard  # noqa: PLC0415

    settings = load_settings()
    given = given_rules(args)
    directory = Path(given) if given else settings.resolved_rules_dir()
    try:
        local: str | None = rules_version(directory)
    except OSError:
        local = None
    try:
        board = RulesBoard(client_for(settings, timeout=5), settings.redis_prefix)
        workers, recompute = board.workers(), board.recompute()
        total = None if recompute is None else board.total(recompute.version)
    except redis.RedisError as error:
        print(f"tagger rules status: cannot use Redis (TAGGER_REDIS_URL): {error}", file=sys.stderr)
        return 1
    if args.json:
        report = {
            "directory": str(directory),
            "directory_version": local,
            "workers": [dataclasses.asdict(w) for w in workers],
            "recompute": dataclasses.asdict(recompute) if recompute else None,
            "recompute_total": total,  # users it has to re-evaluate, as estimated at its start
        }
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"rule directory {directory}: version {local or '(unreadable)'}")
    _print_workers(workers)
    _print_recompute(recompute, total)
    return 0


def _print_workers(workers: list[WorkerRules]) -> None:
    """Each worker's live version and last rejection; a warning when their versions differ."""
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


def _print_recompute(recompute: Recompute | None, total: int | None) -> None:
    """The recompute's state, and how far it is: its rate and, while it runs, time left."""
    if recompute is None:
        print("recompute: none yet")
        return
    state = "running" if recompute.running else f"done at {recompute.finished_at}"
    print(
        f"recompute for version {recompute.version} (from {recompute.previous or 'start'}):"
        f" {state}; {recompute.scanned} users re-evaluated, {recompute.changed} changed,"
        f" started {recompute.started_at}"
    )
    from streams.rules_board import recompute_progress  # noqa: PLC0415  (imports Redis)

    progress = recompute_progress(recompute, total)
    if progress is not None:
        print(f"  {progress}")


def _ago(iso: str) -> str:
    """How long ago an ISO time was, for people ("12 s ago"); the text itself if it is none."""
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    except (ValueError, TypeError):
        return iso
    return f"{seconds:.0f} s ago"

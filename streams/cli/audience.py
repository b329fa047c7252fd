"""``tagger audience TAG``: a tag's audience from Redis as CSV or JSON lines, for the
marketer who wants a file. It reads a page at a time (a range of the tag's sorted set by
id, then those members' profiles), so memory stays bounded however large the audience."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from streams.cli.common import add_rules_option, command, positive, read_from_redis
from taggers.events import format_ts
from taggers.tag_names import tag_declared, unknown_tag

if TYPE_CHECKING:
    from streams.cli.common import Commands
    from streams.redis_store import RedisStore
    from taggers.ruleset import RuleSet

PAGE: Final = 1000
"""Members read from Redis at a time."""
COLUMNS: Final = ("user_id", "since", "expires")


def register(commands: Commands) -> None:
    """Add ``tagger audience``."""
    parser = command(
        commands,
        "audience",
        help="export a tag's audience from Redis as CSV or JSON lines",
        example="tagger audience high_value --format csv --limit 5000 > high_value.csv",
    )
    parser.description = (
        "Print the users holding a tag, by id, with when they got it (since)\n"
        "and when it expires unless confirmed (expires; empty: never), in ISO-8601 UTC,\n"
        "read from Redis a page at a time. A tag the rules cannot give and no user holds\n"
        "is an error (exit 2)."
    )
    parser.add_argument("tag", help="the tag's name, e.g. high_value or interest_美妆")
    add_rules_option(parser)
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default="csv",
        help="csv (a header line, then user_id,since,expires) or jsonl (one JSON object a line)",
    )
    parser.add_argument(
        "--limit",
        type=positive,
        help="stop after this many members (default: the whole audience)",
    )
    parser.set_defaults(func=cmd_audience)


def cmd_audience(args: argparse.Namespace) -> int:
    """Print a tag's audience: 0 when written, 1 if Redis cannot be read, 2 for a tag
    that does not exist."""
    return read_from_redis(args.rules, partial(_export, args.tag, args.format, args.limit))


def _export(
    tag: str, form: str, limit: int | None, rules: RuleSet, store: RedisStore, where: str
) -> int:
    if not tag_declared(rules, tag) and not store.tag_members(tag, limit=1):
        print(f"error: {unknown_tag(rules, tag)['error']}", file=sys.stderr)
        return 2
    written = write_audience(store, tag, form, limit, sys.stdout)
    print(f"{written} members of {tag} from {where}", file=sys.stderr)
    return 0


def audience_rows(store: RedisStore, tag: str, limit: int | None) -> Iterator[dict[str, Any]]:
    """The members of a tag by id, each as ``user_id``, ``since``, ``expires``, a page of
    ``PAGE`` at a time; at most ``limit`` of them (None: all)."""
    after, left = "", limit
    while left is None or left > 0:
        want = PAGE if left is None else min(PAGE, left)
        page = store.audience_page(tag, after=after, count=want)
        for user, record in page:
            if record is None:  # the tag left the profile between the two reads
                continue
            expires = record.get("expires")
            yield {
                "user_id": user,
                "since": format_ts(record["since"]),
                "expires": None if expires is None else format_ts(expires),
            }
            if left is not None:
                left -= 1
        if len(page) < want:
            return
        after = page[-1][0]


def write_audience(store: RedisStore, tag: str, form: str, limit: int | None, out: IO[str]) -> int:
    """Write a tag's audience to ``out`` as ``form`` (csv or jsonl); the members written."""
    written = 0
    if form == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in audience_rows(store, tag, limit):
            writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
            written += 1
    else:
        for row in audience_rows(store, tag, limit):
            out.write(orjson.dumps(row).decode() + "\n")
            written += 1
    return written

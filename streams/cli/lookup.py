"""``tagger profile``, ``tagger audience`` and ``tagger schema``: one user's stored
profile, a tag's audience as a file, and the JSON Schemas of events, outputs and rule files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from streams.cli import audience
from streams.cli.common import add_rules_option, command, read_from_redis
from taggers.display import display_zone, format_value, format_values
from taggers.engine import Engine
from taggers.events import event_json_schema
from taggers.expr import TIMESTAMP
from taggers.identity import load_person
from taggers.json_schema import identified
from taggers.output_schema import outputs_json_schema
from taggers.profile_record import profile_record
from taggers.rulefile import RuleFile

if TYPE_CHECKING:
    from streams.cli.common import Commands
    from streams.redis_store import RedisStore
    from taggers.ruleset import RuleSet


def register(commands: Commands) -> None:
    """Add ``tagger profile``, ``tagger audience`` and ``tagger schema``."""
    profile = command(
        commands,
        "profile",
        help="print a user's profile from Redis: stage, tags and why, aggregates",
        example="tagger profile member:8812 --json",
    )
    profile.add_argument("user_id", metavar="USER_ID", help="any of the person's ids")
    add_rules_option(profile)
    profile.add_argument(
        "--json",
        action="store_true",
        help="print the profile record as JSON (the one `tagger replay --json` ends with and"
        " GET /profiles/{user_id} answers; default: text for people)",
    )
    profile.set_defaults(func=cmd_profile)
    audience.register(commands)

    schema = command(
        commands,
        "schema",
        help="print a JSON Schema (draft 2020-12) of events, outputs or rule files",
        example=[
            "tagger schema outputs > outputs.schema.json",
            "tagger schema events > events.schema.json",
        ],
    )
    schema.add_argument(
        "what",
        choices=list(SCHEMAS),
        help="events: what producers send; outputs: every output kind's record, as the"
        " worker publishes it; rules: a rule file, for editors (no default: name one)",
    )
    schema.set_defaults(func=cmd_schema)


def cmd_profile(args: argparse.Namespace) -> int:
    """Print one user's profile from Redis: stage, tags with reasons, aggregates."""
    return read_from_redis(args.rules, partial(_print_profile, args.user_id, args.json))


def _print_profile(
    user_id: str, as_json: bool, rules: RuleSet, store: RedisStore, where: str
) -> int:
    profile = load_person(store, user_id)
    if profile is None:
        print(f"no profile for user {user_id!r} in {where}", file=sys.stderr)
        return 1
    view = profile_record(Engine(rules), profile)
    if as_json:
        print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
        return 0
    tz = display_zone(rules)

    def time(value: object) -> str:
        return format_value(value, TIMESTAMP, tz)

    stage = format_value(view["stage"])
    if view["stage_display"]:
        stage += f" ({view['stage_display']})"
    print(f"user {view['user_id']}: stage {stage} since {time(view['stage_since'])}")
    print(f"tags ({len(view['tags'])}):")
    for name, tag in view["tags"].items():
        values = format_values(tag["values"], rules.types, tz)
        label = f" ({tag['display']})" if tag["display"] else ""
        expires = f" until {time(tag['expires'])}" if tag["expires"] else ""
        because = values or tag["when"]
        print(f"  {name}{label} since {time(tag['since'])}{expires}  because {because}")
    print("aggregates:")
    for name, value in view["aggregates"].items():
        print(f"  {name} = {format_value(value, rules.types.get(name), tz)}")
    print(f"events: {view['events']}  next deadline: {time(view['next_deadline'])}")
    return 0


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file, as a document of its own."""
    return identified("rules", RuleFile.model_json_schema())


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "events": event_json_schema,
    "outputs": outputs_json_schema,
    "rules": rules_json_schema,
}
"""What ``tagger schema`` prints, by name (each schema's ``$id`` ends in its name)."""


def cmd_schema(args: argparse.Namespace) -> int:
    """Print a JSON Schema."""
    schema = SCHEMAS[args.what]()
    print(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())
    return 0

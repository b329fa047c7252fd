"""Calendar functions on timestamps, in the rule set's time zone, and timestamp constants.

``day_of_week(ts)`` (1 = Monday .. 7 = Sunday), ``month(ts)`` (1-12), ``day(ts)`` (1-31),
``hour(ts)`` (0-23), ``date(ts)`` ('YYYY-MM-DD') and ``days_between(a, b)`` (local
calendar days from a to b) read the local date in the zone the expression was compiled
with (``Compile.zone``); ``timestamp('2026-06-18T00:00:00+08:00')`` is a constant, checked
when compiled. Null in gives null out, as everywhere (``runtime``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, Final

from taggers.events import to_epoch_ms
from taggers.expr import runtime
from taggers.expr.checked import Checked, Compile, Values, arity, article, constant, start
from taggers.expr.parser import Call, ExprError
from taggers.expr.types import INT, STRING, TIMESTAMP, Type, assignable
from taggers.localdays import local_time

_PARTS: Final[dict[str, tuple[Type, Callable[[datetime], Any]]]] = {
    "day_of_week": (INT, datetime.isoweekday),
    "month": (INT, lambda local: local.month),
    "day": (INT, lambda local: local.day),
    "hour": (INT, lambda local: local.hour),
    "date": (STRING, lambda local: local.date().isoformat()),
}


def _timestamp_argument(compile_: Compile, call: Call, at: int) -> Checked:
    out = compile_(call.args[at])
    if not assignable(out.type, TIMESTAMP):
        raise ExprError(
            f"{call.name} needs a timestamp, not {article(out.type)}",
            start(call.args[at]),
            "e.g. now, event.ts, or timestamp('2026-06-18T00:00:00+08:00')",
        )
    return out


def date_part(compile_: Compile, call: Call) -> Checked:
    """``day_of_week(ts)``, ``month(ts)``, ``day(ts)``, ``hour(ts)``, ``date(ts)``."""
    arity(call, 1)
    arg = _timestamp_argument(compile_, call, 0)
    type_, part = _PARTS[call.name]
    zone = compile_.zone

    def apply(ts: int) -> Any:
        return part(local_time(ts, zone))

    return Checked(type_, runtime.guarded(apply, arg.fn), arg.const)


def days_between(compile_: Compile, call: Call) -> Checked:
    """``days_between(a, b)``: local calendar days from ``a`` to ``b`` (negative when
    ``b`` is the earlier day)."""
    arity(call, 2)
    first = _timestamp_argument(compile_, call, 0)
    second = _timestamp_argument(compile_, call, 1)
    zone = compile_.zone
    first_fn, second_fn = first.fn, second.fn

    def between(values: Values) -> Any:
        a, b = first_fn(values), second_fn(values)
        if not isinstance(a, int) or not isinstance(b, int):
            return None
        return _days(b, zone) - _days(a, zone)

    return Checked(INT, between, first.const and second.const)


def _days(ts: int, zone: tzinfo) -> int:
    return local_time(ts, zone).date().toordinal()


def timestamp(compile_: Compile, call: Call) -> Checked:
    """``timestamp('2026-06-18T00:00:00+08:00')``: an instant, from ISO-8601 text with an
    offset (or Z); a constant, so a text that is not one is a compile error."""
    arity(call, 1)
    arg = compile_(call.args[0])
    where = start(call.args[0])
    if arg.type != STRING or not arg.const:
        raise ExprError(
            "timestamp needs a quoted ISO-8601 time",
            where,
            "timestamp('2026-06-18T00:00:00+08:00')",
        )
    try:
        return constant(TIMESTAMP, to_epoch_ms(arg.fn({})))
    except ValueError as error:
        raise ExprError(str(error), where, "timestamp('2026-06-18T00:00:00+08:00')") from None

"""The rule-file format, as pydantic models: what rule authors write in ``rules/*.yaml``.

These models check shape only (which keys, which kinds of values). Meaning (names that
exist, expression types, reachable stages) is checked when the rule set is compiled.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from taggers.aggregates import DEFAULT_KEYS, KINDS, MAX_KEYS, OPTIONS

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
EventTypes = Annotated[
    str | list[str], Field(description="An event type, a list of them, or '*' for any event")
]
Expression = Annotated[str, Field(min_length=1, description="An expression (see docs/rules.md)")]
Duration = Annotated[str, Field(description="A duration such as 90d, 12h, 30m")]
Severity = Literal["info", "low", "medium", "high", "critical"]


def _storable(
    value: bool | int | float | str | datetime,
) -> bool | int | float | str | datetime:
    # A decision keeps the values it read, params included, in the profile: only numbers
    # that a profile can hold exactly (finite, integers of 64 bits) are thresholds.
    if isinstance(value, datetime) and value.tzinfo is None:
        # YAML reads an unquoted 2026-06-18T00:00:00 as a time of no zone: which instant
        # it means depends on where it is read, so it is not one.
        raise ValueError("a timestamp param needs an offset: write e.g. 2026-06-18T00:00:00+08:00")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("an integer param must fit in 64 bits")
    return value


ParamValue = Annotated[
    bool | int | float | str | datetime,
    AfterValidator(_storable),
    Field(
        description="A number, true/false, a text, a duration (60d) or a timestamp with an"
        " offset (2026-06-18T00:00:00+08:00, quoted or not)"
    ),
]


RENAMED_KEYS: Final[dict[str, str]] = {"on": "upon"}
"""Keys that rule files once had, by the key that took their place. ``on`` was renamed
because YAML 1.1 tools (yamllint, editors' schema validators) read the key ``on:`` as
the boolean true, so that a rule file meant something else to them than to the engine."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# The fields of an aggregate come from the kind registry (``taggers.aggregates.KINDS``): a
# key per kind (event types or a field, as the kind's ``shape`` says) and the options some
# kinds take. ``AggregateSpec`` is ``AggregateShape`` with those fields.
class AggregateShape(_Strict):
    """One aggregate: exactly one kind key, optionally a window and filters."""

    if TYPE_CHECKING:  # the fields, as the model built below has them
        of: EventTypes | None
        close: EventTypes | None  # pending's options (taggers.aggregates.pending)
        due: str | None
        minus: EventTypes | None  # sum's option (taggers.aggregates.numbers)
        where: str | None
        by: str | None
        keys: int | None
        window: Duration | None
        limit: int | None
        description: str | None

        def __getattr__(self, name: str) -> str | list[str] | None: ...

    @model_validator(mode="after")
    def _one_kind(self) -> AggregateShape:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(
                f"an aggregate needs exactly one kind ({', '.join(KINDS)}); found {found}"
            )
        return self

    @property
    def kind(self) -> str:
        """The kind key this aggregate uses."""
        return next(k for k in KINDS if getattr(self, k) is not None)


_FORMS: Final[dict[str, Any]] = {"types": EventTypes | None, "field": str | None}


def _aggregate_fields() -> dict[str, Any]:
    """The fields of ``AggregateSpec``, in the order the JSON Schema lists them."""
    found: dict[str, Any] = {
        kind.name: (_FORMS[kind.shape], Field(default=None, description=kind.description))
        for kind in KINDS.values()
    }
    found["of"] = (EventTypes | None, Field(default=None, description="Which event types count"))
    for option in OPTIONS.values():
        form = _FORMS[option.form]
        found[option.name] = (form, Field(default=None, description=option.description))
    found["where"] = (
        Expression | None,
        Field(
            default=None,
            description="Only events for which this condition holds feed the aggregate;"
            " it reads the event's fields as names: props.category == '美妆'",
        ),
    )
    found["by"] = (
        str | None,
        Field(
            default=None,
            description="Keep the aggregate per value of this event field (props.category):"
            " its value is then a map from the key to the kind's value",
        ),
    )
    found["keys"] = (
        Annotated[int, Field(ge=1, le=MAX_KEYS)] | None,
        Field(
            default=None,
            description=f"With by: the most keys kept (default {DEFAULT_KEYS}, at most"
            f" {MAX_KEYS}); the key least recently seen goes first",
        ),
    )
    found["window"] = (Duration | None, None)
    found["limit"] = (Annotated[int, Field(ge=1, le=100_000)] | None, None)
    found["description"] = (str | None, None)
    return found


if TYPE_CHECKING:
    AggregateSpec = AggregateShape
else:
    AggregateSpec = create_model(
        "AggregateSpec",
        __base__=AggregateShape,
        __module__=__name__,
        __doc__=AggregateShape.__doc__,
        **_aggregate_fields(),
    )


class TagSpec(_Strict):
    """A tag: on while ``when`` holds (or until ``exit_when``), or a family named by ``value``."""

    display: str | None = None
    description: str | None = None
    when: Expression | None = None
    exit_when: Expression | None = Field(
        default=None, description="Hysteresis: once on, the tag stays until this is true"
    )
    value: Expression | None = Field(
        default=None, description="A family: the tag is <name>_<value> (one at a time)"
    )
    values: list[str] | None = Field(
        default=None, description="A family's allowed values; others give no tag"
    )
    group: Name | None = Field(
        default=None, description="Exclusive group: a user holds at most one tag of a group"
    )
    expires_after: Duration | None = None

    @model_validator(mode="after")
    def _when_or_value(self) -> TagSpec:
        if (self.when is None) == (self.value is None):
            raise ValueError(
                "a tag needs exactly one of 'when' (a condition) or 'value' (a family)"
            )
        if self.value is not None and (self.exit_when or self.group):
            raise ValueError("a family tag ('value') cannot have 'exit_when' or 'group'")
        if self.values is not None and self.value is None:
            raise ValueError("'values' goes with 'value' (a family tag)")
        return self


class TransitionSpec(_Strict):
    """A lifecycle step: from stage(s) to a stage on a condition, an event or inactivity."""

    from_: str | list[str] = Field(alias="from")
    to: str
    when: Expression | None = None
    upon: EventTypes | None = Field(default=None, description="Only when this event arrives")
    since: EventTypes | None = Field(
        default=None, description="Timer: `after` this long since the last event of these types"
    )
    after: Expression | None = Field(default=None, description="A duration expression: 60d")
    alert: Name | None = Field(default=None, description="Raise this alert (from `alerts`)")

    @model_validator(mode="after")
    def _trigger(self) -> TransitionSpec:
        if (self.since is None) != (self.after is None):
            raise ValueError("'since' and 'after' go together: since: purchase, after: 60d")
        if self.upon is not None and self.after is not None:
            raise ValueError(
                "a transition fires either 'upon' an event or 'after' a time, not both"
            )
        if self.when is None and self.upon is None and self.after is None:
            raise ValueError("a transition needs 'when', 'upon' or 'since'/'after'")
        return self


class LifecycleSpec(_Strict):
    """The stages a user moves through, and how."""

    initial: str
    stages: dict[Name, str | None] = Field(description="Stage names with display names")
    transitions: list[TransitionSpec]


class CalendarSpec(_Strict):
    """When a calendar alert fires: the dates of a list, fixed instants or a yearly date,
    shifted by ``before``/``after``, at a local time of day (the rule set's time zone)."""

    dates: Name | None = Field(
        default=None, description="A list whose lines are `YYYY-MM-DD name` (2027-02-06 春节)"
    )
    at: list[str | datetime] | None = Field(
        default=None,
        description="Instants: timestamp params or ISO-8601 times with an offset",
        min_length=1,
        max_length=1000,
    )
    yearly: Name | None = Field(
        default=None,
        description="An aggregate holding a date (YYYY-MM-DD or MM-DD) or a timestamp"
        " that comes back every year: a birthday, a membership anniversary",
    )
    before: Duration | None = Field(
        default=None, description="Fire this long before: 3d, or a duration param's name"
    )
    after: Duration | None = Field(
        default=None, description="Fire this long after: 1d, or a duration param's name"
    )
    time: str | None = Field(
        default=None, description="Local time of day, HH:MM (default 00:00); not with `at`"
    )

    @model_validator(mode="after")
    def _one_source(self) -> CalendarSpec:
        sources = [k for k in ("dates", "at", "yearly") if getattr(self, k) is not None]
        if len(sources) != 1:
            found = ", ".join(sources) or "none"
            raise ValueError(f"a calendar needs exactly one of dates, at or yearly; found {found}")
        if self.before is not None and self.after is not None:
            raise ValueError("a calendar fires either 'before' or 'after' its dates, not both")
        if self.at is not None and self.time is not None:
            raise ValueError("'time' goes with dates or yearly; the instants of 'at' have theirs")
        return self


class AlertSpec(_Strict):
    """An alert: edge-triggered on ``when``, per event (``upon``), on a timer, or per pending
    item."""

    severity: Severity = "medium"
    display: str | None = None
    description: str | None = None
    when: Expression | None = None
    upon: EventTypes | None = Field(default=None, description="Fire for every such event")
    since: EventTypes | None = None
    after: Expression | None = None
    pending: Name | None = Field(default=None, description="A pending aggregate's items")
    before: Duration | None = Field(default=None, description="pending: how long before due")
    calendar: CalendarSpec | None = Field(
        default=None, description="Fire at calendar dates, with no event (once per date)"
    )
    details: list[Name | dict[Name, Expression]] = Field(
        default_factory=list,
        description=(
            "Values to include: a name (orders), or a one-key map of a name to an"
            ' expression (group: "event.props.group_id")'
        ),
    )

    @field_validator("details")
    @classmethod
    def _one_name_each(cls, details: list[str | dict[str, str]]) -> list[str | dict[str, str]]:
        for index, detail in enumerate(details):
            if isinstance(detail, dict) and len(detail) != 1:
                raise ValueError(
                    f"detail {index + 1} names {len(detail)} values: a detail is a name"
                    ' or one name with its expression (- group: "event.props.group_id")'
                )
        return details

    @model_validator(mode="after")
    def _trigger(self) -> AlertSpec:
        if (self.since is None) != (self.after is None):
            raise ValueError("'since' and 'after' go together: since: purchase, after: 14d")
        if (self.pending is None) != (self.before is None):
            raise ValueError("'pending' and 'before' go together: pending: coupons, before: 2d")
        triggers = [
            t
            for t, present in (
                ("upon", self.upon is not None),
                ("since/after", self.since is not None),
                ("pending", self.pending is not None),
                ("calendar", self.calendar is not None),
            )
            if present
        ]
        if len(triggers) > 1:
            raise ValueError(f"an alert has one trigger; found {' and '.join(triggers)}")
        if self.pending is not None and self.when is not None:
            raise ValueError("a pending alert fires for every open item; it takes no 'when'")
        return self


class ListFile(_Strict):
    """A word list kept in a text file next to the rules (one entry per line, # comments)."""

    file: str


class RuleFile(_Strict):
    """One rule file. A rule set is every ``*.yaml`` file of a directory, merged."""

    description: str | None = None
    timezone: str | None = Field(
        default=None,
        description="The rule set's time zone (an IANA name such as Asia/Shanghai; one file"
        " sets it, default UTC): day buckets, date functions and calendar triggers follow"
        " its local midnight",
    )
    params: dict[Name, ParamValue] = Field(
        default_factory=dict,
        description="Named thresholds that expressions read; durations are written 60d",
    )
    lists: dict[Name, list[str] | ListFile] = Field(default_factory=dict)
    aggregates: dict[Name, AggregateSpec] = Field(default_factory=dict)
    tags: dict[Name, TagSpec] = Field(default_factory=dict)
    lifecycle: LifecycleSpec | None = None
    alerts: dict[Name, AlertSpec] = Field(default_factory=dict)

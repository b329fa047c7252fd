"""The static types of the expression language.

Every value may also be null (an aggregate with no data yet), so types describe what a
value is when it is there. ``dyn`` is "not known until run time" (event props, the last
survey score): it type-checks against anything and is checked when evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Type:
    """A type: a scalar kind, a list or map of ``elem``, or an object with ``fields``."""

    kind: str
    elem: Type | None = None
    fields: tuple[tuple[str, Type], ...] | None = None

    def field(self, name: str) -> Type | None:
        """The type of an object's field, or None if it has no such field."""
        return dict(self.fields or ()).get(name)

    def field_names(self) -> list[str]:
        """The names of an object's fields."""
        return [name for name, _ in self.fields or ()]

    @property
    def numeric(self) -> bool:
        """An int or a double."""
        return self.kind in ("int", "double")

    def __str__(self) -> str:
        if self.kind in ("list", "map"):
            return f"{self.kind}({self.elem})"
        return self.kind


INT: Final = Type("int")
DOUBLE: Final = Type("double")
BOOL: Final = Type("bool")
STRING: Final = Type("string")
DURATION: Final = Type("duration")
TIMESTAMP: Final = Type("timestamp")
NULL: Final = Type("null")
DYN: Final = Type("dyn")


def list_of(elem: Type) -> Type:
    """A list whose items have type ``elem``."""
    return Type("list", elem)


def map_of(elem: Type) -> Type:
    """A map from strings to values of type ``elem``."""
    return Type("map", elem)


def object_of(fields: Mapping[str, Type]) -> Type:
    """An object with known, named fields (``event``, ``lists``)."""
    return Type("object", fields=tuple(fields.items()))


def assignable(actual: Type, expected: Type) -> bool:
    """Whether a value of type ``actual`` may stand where ``expected`` is wanted."""
    if DYN in (actual, expected) or actual in (NULL, expected):
        return True
    if actual == INT and expected == DOUBLE:
        return True
    if actual.kind == expected.kind and actual.kind in ("list", "map"):
        assert actual.elem is not None and expected.elem is not None
        return assignable(actual.elem, expected.elem)
    return actual.kind == "object" and expected.kind == "object"


def comparable(left: Type, right: Type, *, ordering: bool) -> bool:
    """Whether ``left`` and ``right`` may be compared (``<`` and friends when ``ordering``)."""
    if DYN in (left, right):
        return True
    if NULL in (left, right):
        return not ordering
    if left.numeric and right.numeric:
        return True
    if left.kind != right.kind:
        return False
    if ordering:
        return left.kind in ("string", "duration", "timestamp", "bool")
    return True


def common(types: list[Type]) -> Type | None:
    """The one type that all of ``types`` fit (int widens to double), or None."""
    known = [t for t in types if t not in (NULL, DYN)]
    if not known:
        return DYN if DYN in types else NULL
    if all(t.numeric for t in known):
        return INT if all(t == INT for t in known) else DOUBLE
    first = known[0]
    if all(t == first for t in known):
        return first
    return None

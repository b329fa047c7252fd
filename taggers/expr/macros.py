"""The list macros: ``items.exists(i, cond)``, ``all``, ``exists_one``, ``filter`` and
``map``; their type rules and the closures that run them.

The body is evaluated once per item with the macro's name bound to the item (a ``Scope``
over the expression's values). The work is bounded: a macro, with the macros inside its
body, evaluates its body at most ``MAX_STEPS`` times in all; past that its value is null.
Event lists are already bounded by the event's size (64 KiB), this bounds nesting too.
A body that is null or not a bool counts as false, as everywhere a condition is wanted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from taggers.expr.checked import Checked, Compile, Fn, Values, article, condition, start
from taggers.expr.parser import ExprError, Macro, Node
from taggers.expr.types import BOOL, DYN, NULL, STRING, Type, list_of

MAX_STEPS: Final = 1_000
"""The most body evaluations of one macro and the macros inside it, per evaluation."""

Bind = Callable[[Macro, Type, Node], Checked]
"""Compile a part of a macro's body with its item's name bound to a value of the type."""


class Scope(Mapping[str, Any]):
    """The values a macro's body reads: the item under the macro's name, then the rest;
    ``steps`` is the budget that the macro and the macros inside it share."""

    __slots__ = ("item", "name", "outer", "steps")

    def __init__(self, outer: Values, name: str, item: Any, steps: list[int]) -> None:
        self.outer, self.name, self.item, self.steps = outer, name, item, steps

    def __getitem__(self, key: str) -> Any:
        return self.item if key == self.name else self.outer[key]

    def __iter__(self) -> Iterator[str]:
        yield self.name
        yield from (key for key in self.outer if key != self.name)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def compile_macro(compile_: Compile, bind: Bind, node: Macro) -> Checked:
    """Type-check and compile ``target.name(var, body)``."""
    target = compile_(node.target)
    item = item_type(node, target.type)
    if node.name == "map":
        body = bind(node, item, node.body)
    else:
        body = condition(lambda part: bind(node, item, part), node.body)
    if node.name == "map":
        type_ = list_of(body.type)
    elif node.name == "filter":
        type_ = list_of(item)
    else:
        type_ = BOOL
    return Checked(
        type_, _RUNS[node.name](target.fn, node.var, body.fn), target.const and body.const
    )


def item_type(node: Macro, target: Type) -> Type:
    """The type of the items ``node`` goes through: a list's items or a map's keys."""
    if target.kind == "list":
        assert target.elem is not None
        return target.elem
    if target.kind == "map":
        return STRING
    if target in (DYN, NULL):
        return DYN
    raise ExprError(
        f"{node.name} goes through a list, not {article(target)}",
        start(node),
        f"e.g. event.props.items.{node.name}(i, ...)",
    )


def _items(found: Any) -> list[Any] | tuple[Any, ...] | None:
    if found.__class__ in (list, tuple):
        return found
    if found.__class__ is dict:
        return list(found)
    return None


def _runner(finish: Callable[[Any, list[Any]], Any]) -> Callable[[Fn, str, Fn], Fn]:
    """A macro's closure maker: evaluates the body on every item (within the budget) and
    gives ``finish(items, results)``."""

    def make(target: Fn, name: str, body: Fn) -> Fn:
        def run(values: Values) -> Any:
            items = _items(target(values))
            if items is None:
                return None
            steps = values.steps if isinstance(values, Scope) else [MAX_STEPS]
            if len(items) > steps[0]:
                steps[0] = -1
                return None
            steps[0] -= len(items)
            results = []
            for item in items:
                results.append(body(Scope(values, name, item, steps)))
                if steps[0] < 0:  # a macro inside spent the rest
                    return None
            return finish(items, results)

        return run

    return make


_RUNS: Final[dict[str, Callable[[Fn, str, Fn], Fn]]] = {
    "all": _runner(lambda _items, results: all(r is True for r in results)),
    "exists": _runner(lambda _items, results: any(r is True for r in results)),
    "exists_one": _runner(lambda _items, results: sum(r is True for r in results) == 1),
    "filter": _runner(
        lambda items, results: [i for i, r in zip(items, results, strict=True) if r is True]
    ),
    "map": _runner(lambda _items, results: results),
}
"""What each macro gives from its items and the body's results on them."""

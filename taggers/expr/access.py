"""Type rules of reaching into values: fields (``event.type``), indexes (``words[0]``,
``props['sku']``) and list literals (``['active', 'loyal']``).
"""

from __future__ import annotations

from taggers.expr import runtime
from taggers.expr.checked import Checked, Compile, article, constant, start, suggest
from taggers.expr.parser import ExprError, Index, ListLiteral, Member
from taggers.expr.types import DOUBLE, DYN, INT, NULL, STRING, Type, assignable, common, list_of


def member(compile_: Compile, node: Member) -> Checked:
    """``target.name``: an object's field or a map's entry."""
    target = compile_(node.target)
    type_ = field_type(target.type, node)
    return Checked(type_, runtime.field(target.fn, node.name), target.const)


def field_type(type_: Type, node: Member) -> Type:
    """The type of the field ``node`` names in a value of type ``type_``."""
    name = node.name
    if type_.kind == "object":
        found = type_.field(name)
        if found is None:
            raise ExprError(
                f"unknown field {name!r}",
                node.offset,
                suggest(name, type_.field_names())
                or (
                    "fields are: " + ", ".join(type_.field_names()) if type_.field_names() else None
                ),
            )
        return found
    if type_.kind == "map":
        assert type_.elem is not None
        return type_.elem
    if type_ in (DYN, NULL):
        return DYN
    raise ExprError(f"{article(type_)} has no fields", node.offset)


def index(compile_: Compile, node: Index) -> Checked:
    """``target[index]``: a list's item (by int) or a map's or object's entry (by string)."""
    target, key = compile_(node.target), compile_(node.index)
    kind = target.type.kind
    if kind == "list":
        wanted = INT
    elif kind in ("map", "object"):
        wanted = STRING
    elif target.type in (DYN, NULL):
        wanted = DYN
    else:
        raise ExprError(f"cannot index {article(target.type)}", node.offset)
    if not assignable(key.type, wanted) or (wanted == INT and key.type == DOUBLE):
        raise ExprError(
            f"the index must be {article(wanted)}, not {article(key.type)}", start(node.index)
        )
    elem = target.type.elem or DYN
    return Checked(elem, runtime.item(target.fn, key.fn), target.const and key.const)


def list_literal(compile_: Compile, node: ListLiteral) -> Checked:
    """``[a, b, c]``: items of one type."""
    items = [compile_(item) for item in node.items]
    # Items of different kinds make a list of dyn, as in CEL: [1, 'x'].
    elem = (common([item.type for item in items]) or DYN) if items else DYN
    fns = [item.fn for item in items]
    if all(item.const for item in items):
        return constant(list_of(elem), tuple(fn({}) for fn in fns))
    return Checked(list_of(elem), runtime.listed(fns))

"""A pydantic ValidationError of a YAML file, as problems a person can act on.

Rule files and rule-test files are both checked by pydantic models; what it reports is
written for programmers (``Input should be a valid list``, an errors.pydantic.dev URL).
Each error becomes a ``Problem`` at the file:line:column of what it is about, in words
of the file's format, with a hint: the key it probably meant, what to write instead.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from taggers.yaml_source import Path_, Problem, SourceMap

# Pydantic's error types, as what the file should have held there.
_EXPECTED: Final[dict[str, str]] = {
    "string_type": "a text",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _shown(value: Any) -> str:
    """A value as the file wrote it, short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _candidates(annotation: Any) -> list[Any]:
    """The types an annotation allows: a union's members, Annotated and None removed."""
    if get_origin(annotation) is Annotated:
        return _candidates(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [c for arg in get_args(annotation) for c in _candidates(arg)]
    return [] if annotation is type(None) else [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    """The type at ``part`` inside a value of ``annotation`` (None when there is none)."""
    for candidate in _candidates(annotation):
        origin = get_origin(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, info in candidate.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
        elif origin is list and isinstance(part, int):
            return get_args(candidate)[0]
        elif origin is dict and isinstance(part, str):
            return get_args(candidate)[1]
    return None


def allowed_keys(model: type[BaseModel], path: Path_) -> list[str]:
    """The keys a mapping at ``path`` of a ``model`` document may have (aliases as written)."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    return [
        info.alias or name
        for candidate in _candidates(annotation)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel)
        for name, info in candidate.model_fields.items()
    ]


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the known name closest to ``name``, if one is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def validation_problems(
    error: ValidationError,
    source: SourceMap,
    model: type[BaseModel],
    docs: str,
    renamed: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Each error of ``error`` (from validating ``model``) at its place in ``source``.

    ``docs`` names the page that lists the format's keys; ``renamed`` maps keys the
    format once had to the ones that took their place."""
    return [
        _problem(item, source, model, docs, renamed or {})
        for item in error.errors(include_url=False)
    ]


def _problem(
    item: Any, source: SourceMap, model: type[BaseModel], docs: str, renamed: Mapping[str, str]
) -> Problem:
    # Pydantic names the union member it tried (list[str], function-after[...]): not a
    # place in the file.
    loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key in renamed:
            hint = f"{key!r} is now {renamed[key]!r}"
        else:
            hint = did_you_mean(key, allowed_keys(model, loc[:-1])) or (
                f"check the spelling; {docs} lists every key"
            )
        return Problem(source.key(loc), f"unknown key {key!r}", hint)
    if kind == "missing":
        return Problem(source.at(loc[:-1]), f"missing key {str(loc[-1])!r}", f"{docs} shows it")
    if kind in _EXPECTED:
        return Problem(
            source.at(loc), f"expected {_EXPECTED[kind]}, not {_shown(item.get('input'))}"
        )
    message = str(item["msg"]).removeprefix("Value error, ")
    names = "names are lower_case_with_underscores" if "pattern" in kind else None
    return Problem(source.at(loc), message, names)

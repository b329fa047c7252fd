"""Plain YAML values that YAML 1.1 and YAML 1.2 tools read differently.

A rule file is read by more than the engine: yamllint, editors' schema validators and
scripts using PyYAML read YAML 1.1, where ``on``, ``yes`` and ``n`` are booleans, ``1:30``
is 90 and ``012`` is 10; YAML 1.2 tools read the first three as texts, ``1:30`` as a text
and ``012`` as 12. The engine reads such a value one way, so at least one kind of tool
reads the file otherwise. A rule file keeps to values that every YAML tool reads alike,
and this module names the ones that are not (quoting one makes it a text everywhere).
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

# YAML 1.1's booleans (yaml.org/type/bool.html) besides true/false, which 1.2 shares.
# PyYAML leaves out y and n, but the 1.1 type list has them and other tools follow it.
_BOOL_WORDS_11: Final = re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")

# The YAML 1.2 core schema's resolution of plain scalars (the spec's section 10.3.2).
_CORE_12: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("null", re.compile(r"^(?:null|Null|NULL|~|)$")),
    ("bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    ("int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")),
    (
        "float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
    ),
)

_TAG: Final = "tag:yaml.org,2002:"
_KINDS: Final = {
    "null": "null",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "str": "a text",
    "timestamp": "a timestamp",
    "merge": "a merge key",
    "value": "a value key",
}


def _core_12(text: str) -> str:
    for name, pattern in _CORE_12:
        if pattern.match(text):
            return name
    return "str"


def _int_12(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _yaml_11(text: str) -> str:
    resolver: Any = yaml.resolver.Resolver()  # PyYAML's own: YAML 1.1
    tag = resolver.resolve(yaml.ScalarNode, text, (True, False))
    return str(tag).removeprefix(_TAG)


def ambiguity(text: str) -> str | None:
    """How YAML 1.1 and 1.2 tools read the plain (unquoted) scalar ``text`` differently,
    or None when they agree. Timestamps are left alone: 1.2 tools read one as a text and
    rule files take a timestamp written either way."""
    if _BOOL_WORDS_11.match(text):
        truth = "true" if text.lower() in ("y", "yes", "on") else "false"
        return f"YAML 1.1 tools read {text!r} as {truth}, YAML 1.2 ones as the text {text!r}"
    old, new = _yaml_11(text), _core_12(text)
    if old in ("timestamp", "merge", "value"):
        return None  # a merge or value key is refused where it is read (yaml_source)
    if old != new:
        old_kind, new_kind = _KINDS.get(old, old), _KINDS[new]
        return f"YAML 1.1 tools read {text!r} as {old_kind}, YAML 1.2 ones as {new_kind}"
    if old == "int":
        try:
            first = yaml.safe_load(text)
            second = _int_12(text)
        except (ValueError, yaml.YAMLError):
            return None
        if first != second:
            return f"YAML 1.1 tools read {text!r} as {first}, YAML 1.2 ones as {second}"
    return None

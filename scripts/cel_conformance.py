"""Turn google/cel-spec's simple conformance tests into tests/data/cel/simple.json.

    python scripts/cel_conformance.py CEL_SPEC_GIT_DIR [--commit REV] [--out PATH]

CEL_SPEC_GIT_DIR is a clone (or bare mirror) of https://github.com/google/cel-spec; the
files of tests/simple/testdata/ named in FILES are read at REV with ``git show`` and every
test case becomes one JSON object: its id (file/section/name), expression, bindings, and
expected result, with CEL's types kept (``{"int64": 1}`` is not ``{"double": 1.0}``).
tests/unit/test_cel_conformance.py runs them. The data is cel-spec's, under the Apache
License 2.0 (tests/data/cel/LICENSE); the output records the commit it came from.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

FILES = (
    "basic",
    "comparisons",
    "conversions",
    "fields",
    "fp_math",
    "integer_math",
    "lists",
    "logic",
    "macros",
    "macros2",
    "parse",
    "plumbing",
    "string",
    "timestamps",
)
"""The files about the core language; the others test protobuf messages, enums, wrappers,
namespaces, optionals and extension libraries, none of which rule expressions have."""
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "cel" / "simple.json"

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<ext>\[[^\]]*\])
    |(?P<punct>[{}:<>,;\[\]])
    |(?P<word>[-+]?[\w.]+(?:(?<=[eE])[-+]\d+)?)""",
    re.VERBOSE,
)
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11}

Message = list[tuple[str, Any]]
"""A parsed text-format message: its fields in order (repeated fields repeat)."""


def _unescape(literal: str) -> bytes:
    """A text-format string literal's bytes (C escapes: octal, \\x, \\u, \\U)."""
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        kind = body[i + 1]
        if kind in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :])
            assert digits is not None
            out.append(int(digits.group(), 8))
            i += 1 + len(digits.group())
        elif kind == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
            assert digits is not None
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif kind in "uU":
            width = 4 if kind == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + width], 16)).encode()
            i += 2 + width
        else:
            out.append(_SIMPLE_ESCAPES.get(kind, ord(kind)))
            i += 2
    return bytes(out)


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"cannot read {text[at : at + 30]!r}")
        at = match.end()
        kind = match.lastgroup
        if kind is not None:
            found.append((kind, match.group(kind)))
    return found


def parse_message(text: str) -> Message:
    """Parse text-format protobuf (the subset the conformance files use)."""
    tokens = _tokens(text)
    message, at = _fields(tokens, 0, None)
    assert at == len(tokens)
    return message


def _fields(tokens: list[tuple[str, str]], at: int, close: str | None) -> tuple[Message, int]:
    fields: Message = []
    while at < len(tokens):
        kind, value = tokens[at]
        if kind == "punct" and value == close:
            return fields, at + 1
        name = value[1:-1] if kind == "ext" else value
        at += 1
        if tokens[at] == ("punct", ":"):
            at += 1
        kind, value = tokens[at]
        if kind == "punct" and value in "{<":
            nested, at = _fields(tokens, at + 1, "}" if value == "{" else ">")
            fields.append((name, nested))
        elif kind == "str":
            data = b""
            while at < len(tokens) and tokens[at][0] == "str":  # "a" "b" is "ab"
                data += _unescape(tokens[at][1])
                at += 1
            fields.append((name, data))
        else:
            fields.append((name, value))
            at += 1
        if at < len(tokens) and tokens[at] in (("punct", ","), ("punct", ";")):
            at += 1
    assert close is None, "unclosed message"
    return fields, at


def _get(message: Message, name: str) -> Any:
    return next((value for key, value in message if key == name), None)


def _text(data: Any) -> str:
    assert isinstance(data, bytes)
    return data.decode("utf-8")


def _number(word: str) -> float:
    lowered = word.lower()
    if lowered.lstrip("+-") in ("inf", "infinity", "nan"):
        return float(lowered)
    return float(lowered.removesuffix("f"))


def _double(word: str) -> Any:
    number = _number(word)
    if math.isnan(number):
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def value(message: Message) -> dict[str, Any]:
    """A cel.expr.Value as a one-key JSON object naming its CEL type."""
    ((kind, data),) = message
    if kind == "null_value":
        return {"null": None}
    if kind == "bool_value":
        return {"bool": data == "true"}
    if kind in ("int64_value", "uint64_value"):
        return {kind.removesuffix("_value"): int(data, 0)}
    if kind == "double_value":
        return {"double": _double(data)}
    if kind == "string_value":
        return {"string": _text(data)}
    if kind == "bytes_value":
        return {"bytes": data.hex()}
    if kind == "list_value":
        return {"list": [value(item) for key, item in data if key == "values"]}
    if kind == "map_value":
        entries = [entry for key, entry in data if key == "entries"]
        return {"map": [[value(_get(e, "key")), value(_get(e, "value"))] for e in entries]}
    if kind == "type_value":
        return {"type": _text(data)}
    if kind == "enum_value":
        return {"enum": {key: item if isinstance(item, str) else _text(item) for key, item in data}}
    if kind == "object_value":
        return {"object": data[0][0] if data else ""}
    raise ValueError(f"unknown value kind {kind}")


def _expected(test: Message) -> dict[str, Any]:
    for key, data in test:
        if key == "value":
            return {"value": value(data)}
        if key == "typed_result":
            return {"value": value(_get(data, "result"))}
        if key in ("eval_error", "any_eval_errors"):
            return {"error": True}
        if key in ("unknown", "any_unknowns"):
            return {"unknown": True}
    return {"value": {"bool": True}}  # the proto's default: the result is true


def _declared(test: Message) -> dict[str, str]:
    """Declared variables' types, as text (``int64``, ``list``, ``message <name>``...)."""
    declared: dict[str, str] = {}
    for key, decl in test:
        if key != "type_env" or _get(decl, "ident") is None:
            continue
        type_ = _get(_get(decl, "ident"), "type") or []
        ((kind, data),) = type_ or [("dyn", [])]
        shown = data.lower() if isinstance(data, str) else kind
        declared[_text(_get(decl, "name"))] = shown
    return declared


def cases(name: str, text: str) -> list[dict[str, Any]]:
    """The test cases of one conformance file."""
    found: list[dict[str, Any]] = []
    for key, section in parse_message(text):
        if key != "section":
            continue
        for test_key, test in section:
            if test_key != "test":
                continue
            bindings = {
                _text(_get(b, "key")): value(_get(_get(b, "value"), "value") or [])
                for key_, b in test
                if key_ == "bindings"
            }
            found.append(
                {
                    "id": f"{name}/{_text(_get(section, 'name'))}/{_text(_get(test, 'name'))}",
                    "expr": _text(_get(test, "expr")),
                    "bindings": bindings,
                    "declared": _declared(test),
                    "check": _get(test, "disable_check") != "true",
                    "macros": _get(test, "disable_macros") != "true",
                    "container": _text(_get(test, "container") or b""),
                    "expected": _expected(test),
                }
            )
    return found


def main(argv: list[str] | None = None) -> int:
    """Read the files at the given commit of a cel-spec git directory; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a cel-spec clone or mirror (its git dir)")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", f"--git-dir={args.repo}", *command], capture_output=True, check=True
        )
        return done.stdout.decode("utf-8")

    commit = git("rev-parse", args.commit).strip()
    found = [
        case
        for name in FILES
        for case in cases(name, git("show", f"{commit}:tests/simple/testdata/{name}.textproto"))
    ]
    data = {
        "source": f"https://github.com/google/cel-spec/tree/{commit}/tests/simple/testdata",
        "commit": commit,
        "license": "Apache-2.0: Copyright The CEL Authors; see LICENSE next to this file",
        "files": list(FILES),
        "cases": found,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One case a line: a new cel-spec commit shows as a readable diff.
    head = json.dumps({**data, "cases": []}, ensure_ascii=False, indent=1)
    lines = ",\n".join(json.dumps(case, ensure_ascii=False) for case in found)
    text = head.replace('"cases": []', '"cases": [\n' + lines + "\n]")
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"{len(found)} cases from {commit[:12]} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

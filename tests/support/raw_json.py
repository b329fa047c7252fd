"""JSON text with the tokens json and orjson cannot write (1e309, NaN, an escaped lone
surrogate), for the tests of what decoding makes of them."""

from __future__ import annotations

import json


class Raw(str):
    """JSON text written as it is."""


def raw_json(value: object, ascii_only: bool = False) -> str:
    """JSON text of a value, Raw tokens (and big integers) as they are; with ``ascii_only``
    every text as \\u escapes."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        items = (
            f"{raw_json(str(k), ascii_only)}:{raw_json(v, ascii_only)}" for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(raw_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)

"""Errors in log lines without the text that may quote an event's data."""

from __future__ import annotations

from types import TracebackType

__all__ = ["WithheldError", "withheld"]


class WithheldError(Exception):
    """Stands in for an exception whose text is not logged."""


def withheld(
    error: BaseException,
) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """``exc_info`` for an exception whose text may quote event data: its traceback and
    class, with the text left out."""
    stand_in = WithheldError(f"{type(error).__module__}.{type(error).__qualname__} (text withheld)")
    return WithheldError, stand_in, error.__traceback__

"""The worker's log lines: each with the fields its call passed, as text or JSON lines.

``log.error("...", extra={"user_id": u})`` puts ``user_id`` on the record, but neither the
stdlib's formatter nor mode's (it renders only ``extra={"data": {...}}``) shows it. The
formatter here renders every field a call added, after the message: ``key=value`` in
text, keys of the object in JSON (``TAGGER_LOG_FORMAT=json``, one object a line, for log
collectors). It is a plain ``logging.Formatter`` on the root handler, so Faust's, mode's
and aiokafka's records come out the same way as ours (structlog would only wrap the
stdlib loggers those libraries already use).

What goes in: ids, counts, versions, offsets, error classes. Never an event's content or
a user's free text: an exception raised while applying an event may quote its data, so
those are logged with :func:`taggers.redaction.withheld` (where it was raised, and its
class, not its text).
"""

from __future__ import annotations

import logging
import re
import traceback
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

# The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "extra",
    "log_color",
}
_PLAIN: Final = re.compile(r"[\w.:/@+-]+")
BASE_KEYS: Final = ("time", "pid", "level", "logger", "message", "error")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call added to its record (``extra=``), in the order given."""
    found = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    data = found.pop("data", None)  # mode's own convention: extra={"data": {...}}
    if isinstance(data, dict):
        found.update(data)
    elif data is not None:
        found["data"] = data
    return found


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else None
    if text is not None and _PLAIN.fullmatch(text):
        return text
    if isinstance(value, bool | int | float) or value is None:
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class FieldsFormatter(logging.Formatter):
    """Renders a record's message, its ``extra`` fields and any traceback, as ``text``
    or ``json``."""

    def __init__(self, output: Literal["text", "json"] = "text") -> None:
        super().__init__()
        self.output = output

    def format(self, record: logging.LogRecord) -> str:
        """One line (text: plus the traceback's lines, if any)."""
        message = record.getMessage()
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        at = at.replace("+00:00", "Z")
        error = None
        if record.exc_info:
            error = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            error = record.exc_text
        extra = fields(record)
        if self.output == "json":
            line: dict[str, Any] = {
                "time": at,
                "pid": record.process,  # which worker, where several share a log
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
            for key, value in extra.items():
                line[f"field_{key}" if key in BASE_KEYS else key] = value
            if error is not None:
                line["error"] = error
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        text = f"{at} [{record.process}] {record.levelname} {record.name}: {message}"
        if extra:
            text += " " + " ".join(f"{key}={_text_value(v)}" for key, v in extra.items())
        return text if error is None else f"{text}\n{error}"


def logging_config(output: Literal["text", "json"], level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker: one handler on standard error,
    with :class:`FieldsFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"fields": {"()": FieldsFormatter, "output": output}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "fields",
                "stream": "ext://sys.stderr",
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }

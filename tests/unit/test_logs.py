"""Log lines carry the fields their calls passed, as text or JSON, and no event text.

A running worker's log in JSON lines (every line, Faust's and mode's too) is checked in
test_web; these check the formatter and the configuration ``tagger run`` installs.
"""

from __future__ import annotations

import io
import logging
import logging.config
import os
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.logs import FieldsFormatter, fields, logging_config
from taggers.pipeline import _timer_failed
from taggers.redaction import withheld

SECRET_TEXT = "my phone is 138-0000-1111"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The root logger as ``tagger run`` sets it up (text), and a JSON twin, both captured."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    text, json_lines = io.StringIO(), io.StringIO()
    logging.config.dictConfig(logging_config("text", "info"))
    handlers = []
    for stream, output in ((text, "text"), (json_lines, "json")):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(FieldsFormatter(output))  # type: ignore[arg-type]
        handlers.append(handler)
    root.handlers[:] = handlers
    yield text, json_lines
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_the_config_tagger_run_installs_uses_the_fields_formatter() -> None:
    config = logging_config("json", "warning")
    assert config["formatters"]["fields"] == {"()": FieldsFormatter, "output": "json"}
    assert config["root"] == {"level": "WARNING", "handlers": ["default"]}


def test_extra_fields_are_in_the_line(captured: tuple[io.StringIO, io.StringIO]) -> None:
    text, json_lines = captured
    logging.getLogger("streams.app").warning(
        "batch applied", extra={"topic": "events", "partition": 3, "user_id": "u 1"}
    )
    line = text.getvalue().strip()
    assert line.endswith(
        'WARNING streams.app: batch applied topic=events partition=3 user_id="u 1"'
    )
    record = orjson.loads(json_lines.getvalue())
    assert record["message"] == "batch applied"
    assert (record["topic"], record["partition"], record["user_id"]) == ("events", 3, "u 1")
    assert record["level"] == "WARNING" and record["logger"] == "streams.app"
    assert record["pid"] == os.getpid() and f" [{os.getpid()}] WARNING " in line


def test_a_field_named_like_a_base_key_does_not_replace_it(
    captured: tuple[io.StringIO, io.StringIO],
) -> None:
    _, json_lines = captured
    logging.getLogger("x").warning("hello", extra={"level": "mine", "time": 1})
    record = orjson.loads(json_lines.getvalue())
    assert record["level"] == "WARNING" and record["field_level"] == "mine"
    assert record["field_time"] == 1


def test_modes_data_fields_are_rendered_too(captured: tuple[io.StringIO, io.StringIO]) -> None:
    text, _ = captured
    logging.getLogger("mode").warning("x", extra={"data": {"a": 1}})
    assert text.getvalue().strip().endswith("x a=1")


def test_a_failed_deadline_is_logged_with_its_user_and_without_the_errors_text(
    captured: tuple[io.StringIO, io.StringIO],
) -> None:
    text, json_lines = captured
    try:
        raise ValueError(f"could not read {SECRET_TEXT!r}")
    except ValueError as error:
        _timer_failed("u000123", error)
    line = text.getvalue()
    assert "engine failed on a user's deadline" in line and "user_id=u000123" in line
    assert "builtins.ValueError (text withheld)" in line
    assert "test_logs.py" in line  # where it was raised is kept
    record = orjson.loads(json_lines.getvalue())
    assert record["user_id"] == "u000123" and "ValueError" in record["error"]
    assert SECRET_TEXT not in line and SECRET_TEXT not in json_lines.getvalue()


@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True), st.text()))
def test_every_field_survives_a_json_round_trip(extra: dict[str, str]) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m %s", ("arg",), None)
    reserved = set(record.__dict__) | {"message", "asctime", "taskName", "extra", "data"}
    given_fields = {k: v for k, v in extra.items() if k not in reserved}
    record.__dict__.update(given_fields)
    assert fields(record) == given_fields
    line = FieldsFormatter("json").format(record)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["message"] == "m arg"
    base = ("time", "pid", "level", "logger", "message", "error")
    renamed = {(f"field_{k}" if k in base else k): v for k, v in given_fields.items()}
    assert {k: parsed[k] for k in renamed} == renamed


def test_withheld_keeps_the_class_and_traceback_only() -> None:
    try:
        raise KeyError(SECRET_TEXT)
    except KeyError as error:
        kind, value, tb = withheld(error)
    assert tb is not None and SECRET_TEXT not in str(value) and "KeyError" in str(value)
    assert issubclass(kind, Exception)

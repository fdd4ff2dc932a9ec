"""PIVOT_LOG_FORMAT=json: one JSON object per line, with the request line's fields as keys."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta

import orjson
import pytest

from pivot_worker import logs
from pivot_worker.settings import Settings, SettingsError


def _record(msg: str = "hello %s", args: tuple[object, ...] = ("world",), **kw: object) -> logging.LogRecord:
    record = logging.LogRecord("pivot_worker.requests", logging.INFO, __file__, 1, msg, args, None)
    for key, value in kw.items():
        setattr(record, key, value)
    return record


def test_json_line_has_time_level_logger_and_message() -> None:
    line = logs.JsonFormatter().format(_record())
    assert "\n" not in line
    doc = orjson.loads(line)
    assert doc["level"] == "INFO"
    assert doc["logger"] == "pivot_worker.requests"
    assert doc["message"] == "hello world"
    when = datetime.fromisoformat(doc["time"])
    assert when.utcoffset() == timedelta(0)
    assert "exc_info" not in doc


def test_request_fields_become_keys_of_their_own() -> None:
    fields = {
        "call_id": "c1",
        "outcome": "failed",
        "reason": "http_status",
        "status": "503",
        "attempts": 3,
        "ms": 12.5,
        "error": 'bad "answer"\nsecond line',
    }
    doc = orjson.loads(logs.JsonFormatter().format(_record("line", (), **{logs.REQUEST_FIELDS: fields})))
    for key, value in fields.items():
        assert doc[key] == value
    assert doc["message"] == "line"


def test_request_fields_never_replace_the_standard_keys() -> None:
    record = _record("m", (), **{logs.REQUEST_FIELDS: {"message": "x", "level": "y", "ms": 1.0}})
    doc = orjson.loads(logs.JsonFormatter().format(record))
    assert (doc["message"], doc["level"], doc["ms"]) == ("m", "INFO", 1.0)


def test_exception_is_kept_as_traceback_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed", (), exc_info=sys.exc_info())
    doc = orjson.loads(logs.JsonFormatter().format(record))
    assert doc["message"] == "failed"
    assert "Traceback" in doc["exc_info"]
    assert "ValueError: boom" in doc["exc_info"]


def test_formatter_choice_and_setting() -> None:
    assert isinstance(logs.formatter("json"), logs.JsonFormatter)
    assert not isinstance(logs.formatter("text"), logs.JsonFormatter)
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"PIVOT_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="PIVOT_LOG_FORMAT"):
        Settings.from_env({"PIVOT_LOG_FORMAT": "xml"})

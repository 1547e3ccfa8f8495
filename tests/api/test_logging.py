"""Structured logging: JSON lines with the bound request context, for structlog and stdlib loggers."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from cadenza.logging import configure_logging, use_json


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_follows_the_terminal() -> None:
    assert use_json("auto", io.StringIO()) is True
    assert use_json("auto", _Tty()) is False
    assert use_json("json", _Tty()) is True
    assert use_json("console", io.StringIO()) is False


def test_json_lines_carry_request_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    try:
        structlog.contextvars.bind_contextvars(request_id="req-77", key_id="k1")
        structlog.get_logger("cadenza.test").info("hello", bars=4)
        logging.getLogger("uvicorn.error").warning("from stdlib")
        structlog.get_logger("cadenza.test").debug("hidden at info level")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == ["hello", "from stdlib"]
    assert all(line["request_id"] == "req-77" and line["key_id"] == "k1" for line in lines)
    assert lines[0]["bars"] == 4 and lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    assert lines[1]["level"] == "warning" and lines[1]["logger"] == "uvicorn.error"

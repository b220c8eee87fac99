"""JSON log lines: one object each, extras kept, no terminal colour codes."""

from __future__ import annotations

import json
import logging

from service.logs import JsonFormatter


def test_json_lines_carry_extras_but_no_ansi_colour() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (42,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"  # what uvicorn attaches
    record.request_id = "abc"
    line = JsonFormatter().format(record)
    out = json.loads(line)
    assert out["msg"] == "Started server process [42]" and out["request_id"] == "abc"
    assert "color_message" not in out and "\x1b" not in line and "\\u001b" not in line

"""Logging set-up: human-readable lines by default, one JSON object per line with `json`.

JSON lines carry `ts`, `level`, `logger`, `message`, the exception text when there is one, and any
`extra={...}` fields the call passed (e.g. `source`, `message_id`), so a log pipeline can filter
on them. Secrets are redacted by `core.http`'s filter before a record is formatted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from dramatiq.middleware import Middleware

from core.http import RedactingFilter

FORMAT_ENV = "LEADHUB_LOG_FORMAT"
LEVEL_ENV = "LEADHUB_LOG_LEVEL"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record is emitted, not when it was created.

    A handler that kept the stream it started with would write into a closed one after a caller
    (a test runner, an embedding application) swapped `sys.stderr`.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def make_handler(fmt: LogFormat, stream: Any = None) -> logging.Handler:
    """A stderr handler with the chosen format and the secret-redacting filter."""

    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    return handler


def configure(level: str = "WARNING", fmt: LogFormat = "text", *, root: bool = False) -> None:
    """Send `leadhub` logs (with `root`, every library's too) to stderr in `fmt`.

    Replaces the handlers already there (e.g. the CLI's default text handler), so calling it twice
    never doubles a line.
    """
    ours = logging.getLogger("leadhub")
    target = logging.getLogger() if root else ours
    for logger in {target, ours}:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    target.addHandler(make_handler(fmt))
    target.setLevel(level.upper())
    ours.setLevel(level.upper())


def configure_from_env(*, root: bool = True) -> None:
    """Worker processes learn the CLI's choices from `LEADHUB_LOG_FORMAT` / `LEADHUB_LOG_LEVEL`."""
    fmt = os.environ.get(FORMAT_ENV, "text")
    configure(
        os.environ.get(LEVEL_ENV, "WARNING"),
        "json" if fmt == "json" else "text",
        root=root,
    )


class WorkerLogging(Middleware):
    """Applies `LEADHUB_LOG_FORMAT` / `LEADHUB_LOG_LEVEL` in each dramatiq worker process.

    dramatiq sets up its own plain-text logging in every process it starts; `leadhub worker
    --log-format json` asks it not to, and this hook (run once the process has booted) installs
    ours instead.
    """

    def after_process_boot(self, broker: Any) -> None:
        if os.environ.get(FORMAT_ENV):
            configure_from_env(root=True)

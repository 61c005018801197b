"""Structured logging: JSON lines in production, readable output on a TTY."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

from bessai.errors import ConfigError


class _CurrentStderr:
    """Writes to whatever sys.stderr is now, so a live terminal display that redirects stderr
    also catches log lines printed while it runs."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", json_output: bool | None = None) -> None:
    """Configure structlog for the process; JSON when stderr is not a TTY unless told."""
    level_no = logging.getLevelNamesMapping().get(level.upper())
    if level_no is None:
        raise ConfigError(f"unknown log level {level!r}; use debug, info, warning or error")
    # pymodbus logs every failed connect itself; the client reports those with more context.
    logging.getLogger("pymodbus").setLevel(max(level_no, logging.CRITICAL))
    if json_output is None:
        json_output = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )

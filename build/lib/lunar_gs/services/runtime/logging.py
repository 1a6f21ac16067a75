"""Structured logging for every Lunar GS process: structlog, one line per event.

`configure_logging` is called once by each composition root (CLI, rehearsal runner, service main); calling
it again simply reconfigures (idempotent). Library code only calls `get_logger(**context)` and binds
context (mission, node, topic, request id) instead of formatting strings. Log lines of stdlib loggers
(aiomqtt/paho, amqtt) go through the same renderer so a process writes one format to one stream.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger, Processor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Third-party loggers that are chatty at INFO: kept at WARNING whatever our level is.
_QUIET_LOGGERS = ("amqtt", "transitions", "mqtt", "asyncio")

_HANDLER_MARK = "_lunar_gs_handler"


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; known: {', '.join(_LEVELS)}") from None


def configure_logging(level: str = "info", *, json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging) to write `level` and above to `stream`.

    JSON lines by default (machine-readable, what the rehearsal archives); `json=False` gives coloured-less
    console output for humans. `stream` defaults to stderr, looked up at call time (so pytest's capture
    works).
    """
    number = _level_number(level)
    out = stream if stream is not None else sys.stderr
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
        tail: list[Processor] = [structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        tail = [renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    # stdlib loggers (aiomqtt/paho, amqtt) rendered by the same chain; replace our previous handler only.
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(number)
    quiet_loggers()


def quiet_loggers() -> None:
    """Keep chatty third-party loggers at WARNING."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))


def get_logger(**bound: Any) -> FilteringBoundLogger:
    """A structlog logger with `bound` context on every line it writes.

    It is a lazy proxy: it follows the configuration in force when it logs, so module-level loggers
    created before `configure_logging` still obey it (a further `.bind()` freezes the configuration).
    """
    logger: FilteringBoundLogger = structlog.get_logger(**bound)
    return logger

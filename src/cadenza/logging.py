"""Structured logging (structlog) for the server, the workers and the CLI.

``configure_logging(settings)`` renders JSON lines in production (``log_format="json"``, or ``"auto"``
when stderr is not a terminal) and a readable coloured console otherwise. Standard-library loggers
(uvicorn, SQLAlchemy, alembic, the jobs layer) go through the same renderer, so every line carries the
request's context variables (``request_id``, ``key_id``) bound with :func:`structlog.contextvars`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def use_json(log_format: str, stream: Any = None) -> bool:
    """Whether ``log_format`` (``auto`` | ``json`` | ``console``) means JSON for ``stream`` (default stderr)."""
    if log_format == "auto":
        stream = stream if stream is not None else sys.stderr
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def configure_logging(log_format: str = "auto", log_level: str = "info") -> None:
    """Configure structlog and the stdlib root logger to write one line per event to stderr."""
    level = _LEVELS[log_level]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json(log_format):
        renderer: Any = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn's own access log is replaced by the API's access line (with request id and key id).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True

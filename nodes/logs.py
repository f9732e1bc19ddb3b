"""Structured logging: JSON lines on stderr (or console format for people).

``--log-format json`` (default when stderr is not a terminal) suits log
collectors; ``console`` is for interactive use. Level from ``--log-level`` or
``$CERTLEDGER_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(level: str | None = None, fmt: str | None = None) -> None:
    level_name = (level or os.environ.get("CERTLEDGER_LOG_LEVEL") or "WARNING").upper()
    numeric = getattr(logging, level_name, logging.WARNING)
    fmt = fmt or os.environ.get("CERTLEDGER_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    # httpx logs every request at INFO: far too chatty for a node polling etcd
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger

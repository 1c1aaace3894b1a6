"""Logging: JSON lines for machines, a readable console for people, one pipeline for both.

kopf and the Kubernetes client log through the standard library; structlog's formatter
renders their records too, so every line of the operator has the same shape. Lines about a
Release carry `namespace`, `release`, `revision` and `step`, bound once per reconcile.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def configure(*, json: bool | None = None, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library's root logger.

    `json=None` picks JSON unless the stream is a terminal.
    """
    out = stream or sys.stderr
    use_json = not out.isatty() if json is None else json
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind_release(namespace: str, release: str, revision: str | None = None, step: int | None = None) -> None:
    """Tag every line logged in this context (one reconcile of one Release) with the Release."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(namespace=namespace, release=release)
    bind_rollout(revision, step)


def bind_rollout(revision: str | None, step: int | None) -> None:
    """Add where the Release's rollout stands, once the tick has read it: what is unknown is left
    out rather than logged as null."""
    known = {k: v for k, v in (("revision", revision), ("step", step)) if v is not None}
    if known:
        structlog.contextvars.bind_contextvars(**known)


def get_logger(name: str = "glideslope") -> Any:
    """The operator's loggers: an event and its fields (`log.info("announced", reason=...)`),
    bound to the Release being reconciled."""
    return structlog.get_logger(name)


def _to_stdlib_until_configured() -> None:
    """Before `configure` (tests, the plugin), structlog's loggers still hand their lines to the
    standard library's, rendered as `event key=value`, instead of printing them to stdout."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars,
                        structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )


def reset() -> None:
    """Back to how the loggers are before `configure` (for tests that configure)."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    _to_stdlib_until_configured()


_to_stdlib_until_configured()

"""Prometheus metrics shared by the web app and the worker.

Every process defines the same metrics at import. With several processes (uvicorn workers,
Celery's prefork pool) the counters live in files under ``PROMETHEUS_MULTIPROC_DIR`` (the
variable is prometheus_client's own, read by the library at import; we only mirror it to
pick the collector) and ``/metrics`` adds them up with ``MultiProcessCollector``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

MESSAGES_SENT = Counter(
    "ptnudge_messages_sent_total", "Messages the provider accepted.", ["channel"]
)
MESSAGES_FAILED = Counter(
    "ptnudge_messages_failed_total",
    "Messages that failed, by channel and reason (provider error code or status).",
    ["channel", "reason"],
)
REPLIES = Counter("ptnudge_replies_total", "Inbound replies, by parsed command.", ["command"])
TICK_SECONDS = Histogram("ptnudge_tick_duration_seconds", "Duration of one dispatcher pass.")
SEND_LAG_SECONDS = Histogram(
    "ptnudge_send_lag_seconds",
    "Sent time minus due time.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900),
)
# One value for the whole system, set by whichever process ran the last tick.
QUEUE_LAG = Gauge(
    "ptnudge_due_backlog",
    "Reminders queued but not sent yet.",
    multiprocess_mode="livemostrecent",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> tuple[bytes, str]:
    """The text format and its content type: this process's registry, or the sum over every
    process's files in multiprocess mode (where the default registry would show only one
    process's share)."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other hosts
    """Serve ``/metrics`` from a background thread (a worker has no web app of its own)."""
    registry = REGISTRY
    directory = multiprocess_dir()
    if directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)

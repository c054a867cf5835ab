"""Prometheus metrics: runs, records, API calls, retries, rate-limit waits, queue lag.

Every process records into these module-level metrics. `leadhub worker --metrics-port` runs its
worker processes in prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`), and one
extra process serves the sum of them all; `leadhub run` and `leadhub serve` serve their own
process's registry. `metrics_app()` is the ASGI app for the `/metrics` route.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from dramatiq.middleware import Middleware
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    make_asgi_app,
    multiprocess,
    start_http_server,
)

if TYPE_CHECKING:
    from dramatiq import Broker
    from dramatiq.broker import MessageProxy

    from core.store.ingest import PageCounts

PORT_ENV = "LEADHUB_METRICS_PORT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)

RUNS = Counter("leadhub_runs", "Pipeline runs finished.", ["kind", "target", "status"])
RECORDS = Counter("leadhub_records", "Records read by pulls, by result.", ["source", "result"])
API_CALLS = Counter("leadhub_api_calls", "HTTP calls to vendor APIs.", ["vendor", "status"])
RETRIES = Counter("leadhub_retries", "Messages handed back to the broker for a retry.", ["actor"])
RATE_LIMIT_WAITS = Counter(
    "leadhub_rate_limit_waits", "Times a call waited for its rate budget.", ["key"]
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "leadhub_rate_limit_wait_seconds", "Time spent waiting for a rate budget.", ["key"]
)
QUEUE_LAG = Histogram(
    "leadhub_queue_lag_seconds",
    "Time from a message being due to a worker starting it.",
    ["actor"],
    buckets=LAG_BUCKETS,
)
MESSAGES = Counter("leadhub_messages", "Messages processed, by outcome.", ["actor", "outcome"])
MESSAGE_SECONDS = Histogram(
    "leadhub_message_duration_seconds", "Time spent processing a message.", ["actor"]
)
DROPPED = Counter(
    "leadhub_dropped_messages", "Messages dropped on purpose (a busy source).", ["actor", "reason"]
)
LATE = Counter(
    "leadhub_late_messages", "Periodic messages that started later than one period.", ["actor"]
)
DEFERRED = Counter(
    "leadhub_deferred_messages",
    "Messages handed back with a delay (a long Retry-After, or a busy step).",
    ["actor"],
)


def record_run(kind: str, target: str, status: str, counts: PageCounts | None = None) -> None:
    """Count one finished run and, for pulls, its records by result."""
    RUNS.labels(kind, target, status).inc()
    if counts is None:
        return
    for result in ("created", "updated", "unchanged", "quarantined"):
        value = getattr(counts, result)
        if value:
            RECORDS.labels(target, result).inc(value)


def record_api_call(vendor: str, status: int | str) -> None:
    """Count one vendor API call (for `core.http`): status is the HTTP status or an error name."""
    API_CALLS.labels(vendor, str(status)).inc()


def record_rate_wait(key: str, seconds: float) -> None:
    RATE_LIMIT_WAITS.labels(key).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(key).observe(seconds)


class JobMetrics(Middleware):
    """Counts every message by outcome (ok, failed, retried, skipped), its duration and lag.

    Listed before `Retries`: dramatiq runs after-hooks in reverse order, so by the time ours runs
    `message.failed` already says whether a failing message was retried or given up.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._mutex = threading.Lock()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        now = time.time()
        # A delayed message is due at its eta, not when it was sent; lag counts from then.
        due_ms = max(message.message_timestamp, message.options.get("eta", 0))
        QUEUE_LAG.labels(message.actor_name).observe(max(0.0, now - due_ms / 1000))
        with self._mutex:
            self._started[message.message_id] = now

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._mutex:
            started = self._started.pop(message.message_id, None)
        if started is not None:
            MESSAGE_SECONDS.labels(message.actor_name).observe(time.time() - started)
        if exception is None:
            outcome = "ok"
        elif message.failed:
            outcome = "failed"
        else:
            outcome = "retried"
            RETRIES.labels(message.actor_name).inc()
        MESSAGES.labels(message.actor_name, outcome).inc()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._mutex:
            self._started.pop(message.message_id, None)
        MESSAGES.labels(message.actor_name, "skipped").inc()


def registry() -> CollectorRegistry:
    """The registry to serve: all worker processes' metrics in multiprocess mode, else ours."""
    if os.environ.get(MULTIPROC_ENV):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


def metrics_app() -> Any:
    """An ASGI app answering Prometheus scrapes; mount it at `/metrics`."""
    return make_asgi_app(registry=registry())


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve `/metrics` on `port` from a background thread of this process."""
    start_http_server(port, addr=addr, registry=registry())


def serve_forever() -> int:
    """Entry point of the metrics process beside dramatiq workers (`--fork-function`)."""
    serve(int(os.environ[PORT_ENV]))
    while True:
        time.sleep(3600)

"""Dramatiq actors around the pipeline steps, and the choice of broker.

    pull(source) ──▶ score() ──▶ push(destination) for each destination
    rescore_all(), decay()  ──▶ push(destination) for each destination

The broker is chosen when this module is imported, before any actor is declared:
`LEADHUB_BROKER_URL` unset gives dramatiq's StubBroker, run by worker threads inside the process
(`start_worker`, `run_until_idle`); `redis://…` gives a RedisBroker for `leadhub worker` processes.

Delivery is at least once, so every actor is safe to run twice: pulls upsert keyed pages, the
scorer rewrites only what changed, the outbox never resends what a destination accepted. Messages
carry names, never objects. One pull per source runs at a time (a Redis lock, or a lease row in
embedded mode); a pull that finds its source busy is dropped, since the running one already
covers it. A score or push that finds its lock busy comes back later instead: the running one
may have started before the change that sent it. Embedded, queued messages live in memory: a
restart forgets them, and the scheduler's next tick sends what matters again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import logs, metrics
from core.errors import (
    AuthError,
    ConfigError,
    LeadhubError,
    RateLimited,
    RequestRejected,
    SourceError,
)
from core.jobs.deadletters import DeadLetters
from core.jobs.locks import Lock, RedisLock, StoreLease, held
from core.jobs.scheduler import StaleTicks
from core.settings import Settings

if TYPE_CHECKING:
    from connectors.base.contract import Cursor, Page, Source
    from core.config import HubConfig
    from core.store.store import Store

log = logging.getLogger("leadhub.jobs")

# Failures that no retry can fix: the message goes to the dead-letter queue at once, to be
# requeued (`leadhub dlq requeue`) once the setting or credential is fixed.
PERMANENT = (ConfigError, AuthError, RequestRejected, SourceError)


class JobSettings(BaseSettings):
    """Tuning of the jobs layer (environment prefix `LEADHUB_JOBS_`); times in seconds.

    Parameters:
        queue: the dramatiq queue every actor uses.
        lock_ttl: life of a source/step lock without renewal (renewed every ttl/3 while held).
        heartbeat_timeout: how long a silent worker has before its messages are redelivered;
            longer than lock_ttl, so a redelivered pull finds the dead worker's lock expired.
        maintenance_chance: out of a million broker commands, how many run that redelivery.
        max_retries, min_backoff, max_backoff: bounds of dramatiq's Retries middleware.
        busy_delay: when a score or push comes back after finding its lock busy.
        default_retry_after: the delay for a rate limit that gave no Retry-After.
        max_deferrals: rate-limit deferrals of one message before it counts as a failure.
        time_limit: the longest one message may run.
        decay_schedule: cron (UTC) of the daily decay pass; empty turns it off.
    """

    model_config = SettingsConfigDict(env_prefix="LEADHUB_JOBS_", extra="ignore")

    queue: str = "leadhub"
    lock_ttl: float = 30.0
    heartbeat_timeout: float = 60.0
    maintenance_chance: int = 1000
    max_retries: int = 5
    min_backoff: float = 15.0
    max_backoff: float = 3600.0
    busy_delay: float = 5.0
    default_retry_after: float = 60.0
    max_deferrals: int = 20
    time_limit: float = 3600.0
    decay_schedule: str = "0 3 * * *"

    @model_validator(mode="after")
    def _heartbeat_outlives_lock(self) -> JobSettings:
        if self.heartbeat_timeout <= self.lock_ttl:
            raise ValueError(
                "LEADHUB_JOBS_HEARTBEAT_TIMEOUT must be longer than LEADHUB_JOBS_LOCK_TTL, or a "
                "redelivered pull would find the dead worker's lock still held and be dropped"
            )
        return self


def make_broker(url: str | None, settings: JobSettings) -> dramatiq.Broker:
    """A StubBroker (url None) or a RedisBroker, with bounded retries, metrics and dead letters."""
    middleware: list[Middleware] = [
        StaleTicks(),
        TimeLimit(time_limit=int(settings.time_limit * 1000)),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # dramatiq runs after-hooks in reverse order: listed before Retries, these two see
        # whether Retries retried a failing message or gave it up.
        metrics.JobMetrics(),
        DeadLetters(settings.queue, store=lambda: context()[0]),
        logs.WorkerLogging(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=int(settings.min_backoff * 1000),
            max_backoff=int(settings.max_backoff * 1000),
        ),
        CurrentMessage(),
    ]
    if not url:
        return StubBroker(middleware=middleware)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"LEADHUB_BROKER_URL: expected redis://host:port/db, got {url!r}")
    return RedisBroker(
        url=url,
        middleware=middleware,
        heartbeat_timeout=int(settings.heartbeat_timeout * 1000),
        maintenance_chance=settings.maintenance_chance,
    )


def _job_settings() -> JobSettings:
    try:
        return JobSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = "_".join(map(str, err["loc"])).upper()
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"LEADHUB_JOBS_{where}: {message}" if where else message)
        raise ConfigError("; ".join(problems)) from None


job_settings = _job_settings()
broker = make_broker(Settings().broker_url, job_settings)
dramatiq.set_broker(broker)


# -- the process's store and hub file ------------------------------------------------------------

_context_lock = threading.Lock()
_store: Store | None = None
_hub: tuple[Path, int, HubConfig] | None = None


def context() -> tuple[Store, HubConfig]:
    """This process's store, and the hub file (read again whenever it changes on disk)."""
    global _store, _hub
    from core.config import load_hub
    from core.store.store import Store

    settings = Settings()
    with _context_lock:
        if _store is None:
            _store = Store(settings.database_url)
        path = Path(settings.config)
        mtime = path.stat().st_mtime_ns if path.exists() else -1
        if _hub is None or _hub[:2] != (path, mtime):
            _hub = (path, mtime, load_hub(path))
        return _store, _hub[2]


def lock_for(name: str) -> Lock:
    """A lock shared by every worker: in Redis with the Redis broker, else a lease in the store."""
    if isinstance(broker, RedisBroker):
        return RedisLock(broker.client, name, job_settings.lock_ttl)
    return StoreLease(context()[0], name, job_settings.lock_ttl)


# -- seeing why a step stopped -------------------------------------------------------------------


class _ErrorSink:
    """Remembers the error that stopped a step: the pipeline records it as a failed run and
    returns, but the actor needs its type to decide between retry, deferral and dead letter."""

    error: LeadhubError | None = None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeadhubError as exc:
            self.error = exc
            raise

    def iterate(self, pages: Iterator[Page]) -> Iterator[Page]:
        try:
            yield from pages
        except LeadhubError as exc:
            self.error = exc
            raise


class _WatchedStream:
    def __init__(self, stream: Any, sink: _ErrorSink) -> None:
        self.name, self._stream, self._sink = stream.name, stream, sink

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        return self._sink.iterate(self._stream.read(cursor))


class _WatchedSource:
    def __init__(self, source: Source, sink: _ErrorSink) -> None:
        self.name, self._source, self._sink = source.name, source, sink

    def streams(self) -> Sequence[Any]:
        streams = self._sink.call(self._source.streams)
        return [_WatchedStream(s, self._sink) for s in streams]


class _WatchedDestination:
    """The destination with every method call watched (`on_qualified` only if it has one)."""

    def __init__(self, destination: Any, sink: _ErrorSink) -> None:
        self._destination, self._sink = destination, sink

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._destination, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._sink.call(value, *args, **kwargs)


# -- actors --------------------------------------------------------------------------------------

P = ParamSpec("P")


def actor(fn: Callable[P, None]) -> dramatiq.Actor[P, None]:
    """Declare an actor on the jobs queue; permanent errors go straight to the dead letters."""
    declare = dramatiq.actor(queue_name=job_settings.queue, throws=PERMANENT)
    return declare(fn)


@actor
def pull(source: str, full: bool = False) -> None:
    """Pull one source, unless a pull of it is already running; then enqueue a score."""
    from connectors.base import SourceContext, open_source
    from core.pipeline import pull as pipeline

    store, hub = context()
    config = hub.source(source)
    with held(lock_for(f"pull:{source}")) as lock:
        if not lock.acquired:
            log.warning("pull %s is already running (%s); tick dropped", source, lock.lock.holder())
            metrics.DROPPED.labels("pull", "busy").inc()
            return
        sink = _ErrorSink()
        # pipeline.pull, with the source watched so that we learn the error's type.
        watched = _WatchedSource(
            sink.call(
                open_source, config.connector, config.settings, SourceContext(source, hub.base_dir)
            ),
            sink,
        )
        result = pipeline.pull_source(
            store, source, watched, priority=hub.field_priority, full=full
        )
    metrics.record_run("pull", source, "ok" if result.ok else "failed", result.counts)
    if result.ok or result.counts.created or result.counts.updated:
        score.send()  # also after a partial failure: the committed pages are worth scoring
    if not result.ok:
        # The cursor already moved past every committed page, so the rest is never a full pull.
        _handle_failure(pull, (source,), {}, sink.error or LeadhubError(str(result.error)))


@actor
def score() -> None:
    """Score the leads that changed since the last score, then push to every destination."""
    _score(score, full=False)


@actor
def rescore_all() -> None:
    """Score every lead again (after a model change, or on request), then push."""
    _score(rescore_all, full=True)


@actor
def decay() -> None:
    """The daily pass that lets inactivity decay and windows expire in stored scores.

    For now this is a full rescore (`scorer.score(full=True)`): correct, and cheap enough at
    today's sizes; a pass over only the scores whose `next_change_at` has come is the next step.
    """
    _score(decay, full=True)


def _score(this: dramatiq.Actor[Any, Any], *, full: bool) -> None:
    store, hub = context()
    if not hub.models:
        log.info("no scoring models configured; nothing to score")
        return
    from core.pipeline import score as scorer

    with held(lock_for("score")) as lock:
        if not lock.acquired:
            _come_back(this, (), "score")
            return
        run = scorer.score(store, hub.models, full=full)
    metrics.record_run("score", "all", "ok")
    log.info("scored %d lead(s), %d changed", run.leads, run.changed)
    for name in hub.destinations:
        push.send(name)


@actor
def push(destination: str) -> None:
    """Send one destination's pending outbox rows; a long rate limit hands the message back."""
    from core.pipeline import outbox

    store, hub = context()
    cfg = hub.destination(destination).settings
    if cfg is None:
        raise ConfigError(f"destinations.{destination}: not validated")
    if hub.models and cfg.model not in {m.name for m in hub.models}:
        known = ", ".join(m.name for m in hub.models)
        raise ConfigError(f"destinations.{destination}.model: no scoring model {cfg.model!r} "
                          f"({known})")  # fmt: skip
    with held(lock_for(f"push:{destination}")) as lock:
        if not lock.acquired:
            _come_back(push, (destination,), destination)
            return
        sink = _ErrorSink()
        # outbox.push_configured, with the destination watched so that we learn the error's type.
        target = _WatchedDestination(outbox.open_destination(cfg, hub.base_dir), sink)
        result = outbox.push(store, cfg, target)
    metrics.record_run("push", destination, "ok" if result.ok else "failed")
    if not result.ok:
        _handle_failure(push, (destination,), {}, sink.error or LeadhubError(str(result.error)))


def _come_back(this: dramatiq.Actor[Any, Any], args: tuple[Any, ...], what: str) -> None:
    log.info("%s %s is busy; coming back in %.0f s", this.actor_name, what, job_settings.busy_delay)
    metrics.DEFERRED.labels(this.actor_name).inc()
    this.send_with_options(args=args, delay=int(job_settings.busy_delay * 1000))


def _handle_failure(
    this: dramatiq.Actor[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], error: Exception
) -> None:
    """Defer a rate-limited message; raise anything else: PERMANENT errors are dead-lettered at
    once, the rest (a failure of unknown kind included) retried a bounded number of times."""
    if not isinstance(error, RateLimited):
        raise error
    message = CurrentMessage.get_current_message()
    deferrals = message.options.get("deferrals", 0) if message else 0
    if deferrals >= job_settings.max_deferrals:
        raise error  # an account that stays throttled this long is for a person to look at
    delay = error.retry_after or job_settings.default_retry_after
    log.warning("%s%r rate limited; handing it back for %.0f s", this.actor_name, args, delay)
    metrics.DEFERRED.labels(this.actor_name).inc()
    this.send_with_options(
        args=args, kwargs=kwargs, delay=int(delay * 1000), deferrals=deferrals + 1
    )


# -- embedded mode -------------------------------------------------------------------------------


def start_worker(threads: int = 4) -> dramatiq.Worker:
    """Start worker threads in this process (embedded mode, or an in-process Redis worker)."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def run_until_idle(threads: int = 4, timeout: float | None = None) -> None:
    """Embedded: work until the queue (delayed messages included) is empty, then stop."""
    if not isinstance(broker, StubBroker):
        raise ConfigError("run_until_idle is for embedded mode (LEADHUB_BROKER_URL unset)")
    worker = start_worker(threads)
    try:
        broker.join(
            job_settings.queue,
            timeout=None if timeout is None else int(timeout * 1000),
            fail_fast=False,
        )
        worker.join()
    finally:
        worker.stop()

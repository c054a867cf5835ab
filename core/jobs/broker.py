"""The jobs runtime: its settings, the broker `configure` builds, and this process's store and hub.

Nothing is built at import. The application calls `configure()` once it knows its settings: the
CLI commands that run or send jobs, each worker process (`dramatiq core.jobs.broker:configure
core.jobs.actors`), and tests. `LEADHUB_BROKER_URL` unset gives dramatiq's StubBroker, run by
worker threads inside the process (`core.jobs.actors.start_worker`); `redis://…` a RedisBroker.

Actors are declared with `declare` at import, before or after `configure`: until then they sit
on a placeholder broker that refuses to send, and `configure` moves every one onto the real one.

Each kind of work has a queue of its own (`<queue>.intake`, `.pull`, `.score`, `.push`), so
that a long queue of one kind never starves another, and `leadhub worker --queues` can give each
kind its own workers. Actors of no kind (your own modules) use `<queue>` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import logs, metrics
from core.config import HubConfig, load_hub
from core.errors import ConfigError
from core.jobs import pending
from core.jobs.deadletters import DeadLetters
from core.jobs.locks import Lock, RedisLock, StoreLease
from core.jobs.middleware import BusyLocks, Coalesce, LateTicks, Retries
from core.settings import Settings, settings_problems
from core.store.store import Store

P = ParamSpec("P")
KINDS = ("intake", "pull", "score", "push")
ACTOR_KINDS = {"intake": "intake", "pull": "pull", "score": "score", "rescore_all": "score",
               "decay": "score", "push": "push"}  # fmt: skip
"""The kind of work (and so the queue) of each of the pipeline's actors, by actor name."""


class JobSettings(BaseSettings):
    """Tuning of the jobs layer (environment prefix `LEADHUB_JOBS_`); times in seconds.

    Parameters:
        queue: the prefix of the queues (`<queue>.intake`, `.pull`, `.score`, `.push`;
            `<queue>` for actors of no kind).
        lock_ttl: life of a source/step lock without renewal (renewed every ttl/3 while held),
            so a killed worker's lock frees within this many seconds.
        heartbeat_timeout: how long a silent worker has before its messages are redelivered;
            longer than lock_ttl, so a redelivered pull finds the dead worker's lock expired.
        maintenance_chance: out of a million broker commands, how many run that redelivery.
        max_retries, min_backoff, max_backoff: bounds of the Retries middleware.
        busy_delay: when a score or push comes back after finding its lock busy.
        default_retry_after: the delay for a rate limit that gave no Retry-After.
        max_deferrals: rate-limit deferrals of one message before it counts as a failure.
        time_limit: the longest one message may run.
        decay_schedule: cron (UTC) of the daily decay pass; empty turns it off.
    """

    model_config = SettingsConfigDict(env_prefix="LEADHUB_JOBS_", extra="ignore")

    queue: str = "leadhub"
    lock_ttl: float = 6.0
    heartbeat_timeout: float = 15.0
    # Redelivery runs on a broker command of the dead worker's queue: with each idle worker
    # polling each queue about once a second, 5 % finds a dead worker's messages within seconds.
    maintenance_chance: int = 50_000
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


def load_job_settings() -> JobSettings:
    """JobSettings from the environment; a bad value is a ConfigError naming the variable."""
    try:
        return JobSettings()
    except ValidationError as exc:
        raise ConfigError(settings_problems(exc, "LEADHUB_JOBS_", given=False)) from None


class Unconfigured(dramatiq.Broker):
    """Where actors wait for `configure`: it keeps their declarations and refuses to send."""

    def __init__(self) -> None:
        super().__init__(middleware=[])

    def declare_queue(self, queue_name: str) -> None:
        pass

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        raise ConfigError(
            f"cannot send {message.actor_name}: the jobs broker is not configured yet "
            "(core.jobs.broker.configure() builds it from LEADHUB_BROKER_URL)"
        )


@dataclass(frozen=True)
class Runtime:
    """What `configure` built: the broker and the settings it was built with."""

    broker: dramatiq.Broker
    settings: JobSettings


_placeholder = Unconfigured()
_runtime: Runtime | None = None
_context_lock = threading.Lock()
_store: Store | None = None
_hub: tuple[Path, int, HubConfig] | None = None


def configure(app: Settings | None = None, jobs: JobSettings | None = None) -> dramatiq.Broker:
    """Build the broker (StubBroker, or Redis for `app.broker_url`), make it dramatiq's global
    one and move every declared actor onto it; the process's store and hub are opened afresh.

    Parameters:
        app: where the broker URL comes from (default: the environment).
        jobs: the jobs' tuning (default: `LEADHUB_JOBS_*`).
    """
    global _runtime
    settings = jobs or load_job_settings()
    broker = make_broker((app or Settings()).broker_url, settings)
    previous = _runtime.broker if _runtime else _placeholder
    for actor in list(previous.actors.values()):
        _check_options(actor, broker)
        actor.broker, actor.queue_name = broker, queue_of(actor.actor_name, settings)
        broker.declare_actor(actor)
    dramatiq.set_broker(broker)
    pending.forget_local()
    _runtime = Runtime(broker, settings)
    reset_context()
    return broker


def configure_once() -> Runtime:
    """The runtime `configure` built, configuring from the environment on first use (for
    commands that may run several times in one process, as under tests)."""
    if _runtime is None:
        configure()
    return runtime()


def make_broker(url: str | None, settings: JobSettings) -> dramatiq.Broker:
    """A StubBroker (url None) or a RedisBroker, with the jobs' middleware."""
    middleware: list[Middleware] = [
        LateTicks(),
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
            max_deferrals=settings.max_deferrals,
            default_retry_after=settings.default_retry_after,
        ),
        BusyLocks(lock_for, settings.busy_delay),
        # After BusyLocks: a coalesced request is taken off the books only once the lock is held.
        Coalesce(),
        CurrentMessage(),
    ]
    if not url:
        return StubBroker(middleware=middleware)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"LEADHUB_BROKER_URL: expected redis://host:port/db, got {url!r}")
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        middleware=middleware,
        heartbeat_timeout=int(settings.heartbeat_timeout * 1000),
        maintenance_chance=settings.maintenance_chance,
    )


def runtime() -> Runtime:
    """The configured broker and settings; ConfigError before `configure`."""
    if _runtime is None:
        raise ConfigError("the jobs broker is not configured: call core.jobs.broker.configure()")
    return _runtime


def queue_of(actor_name: str, settings: JobSettings | None = None) -> str:
    """The queue of the actor named `actor_name`: `<queue>.<kind>`, or `<queue>` for no kind."""
    settings = settings or (_runtime.settings if _runtime else None)
    prefix = settings.queue if settings else "leadhub"  # configure() moves it if that differs
    kind = ACTOR_KINDS.get(actor_name)
    return f"{prefix}.{kind}" if kind else prefix


def queues(settings: JobSettings | None = None) -> list[str]:
    """Every queue the jobs use: one per kind of work, and the one for actors of no kind."""
    prefix = (settings or runtime().settings).queue
    return [prefix, *(f"{prefix}.{kind}" for kind in KINDS)]


def request(actor_name: str, *args: str, **options: Any) -> bool:
    """Ask for a run of the actor named `actor_name` on `args`: one message is sent unless one
    is already queued (`core.jobs.pending`). Returns whether a message was sent."""
    return pending.send_once(runtime().broker, queue_of(actor_name), actor_name, *args, **options)


def declare(fn: Callable[P, None], **options: Any) -> dramatiq.Actor[P, None]:
    """An actor for `fn` on the configured broker, or on the placeholder until `configure`.

    `options` are actor options of the jobs' middleware (`lock`, `when_busy`, `throws`, …).
    """
    broker = _runtime.broker if _runtime else _placeholder
    queue = queue_of(fn.__name__)
    actor = dramatiq.Actor(
        fn, broker=broker, actor_name=fn.__name__, queue_name=queue, priority=0, options=options
    )
    if _runtime:
        _check_options(actor, broker)
    return actor


def _check_options(actor: dramatiq.Actor[Any, Any], broker: dramatiq.Broker) -> None:
    # dramatiq's own decorator checks this at declaration; before `configure` no middleware is
    # there to say which options exist, so it is checked when the actor reaches the broker.
    if unknown := set(actor.options) - broker.actor_options:
        raise ValueError(f"actor {actor.actor_name}: unknown options {sorted(unknown)}")


# -- the process's store and hub file ------------------------------------------------------------


def context() -> tuple[Store, HubConfig]:
    """This process's store, and the hub file (read again whenever it changes on disk)."""
    global _store, _hub
    settings = Settings()
    with _context_lock:
        if _store is None:
            _store = Store(settings.database_url)
        path = Path(settings.config)
        mtime = path.stat().st_mtime_ns if path.exists() else -1
        if _hub is None or _hub[:2] != (path, mtime):
            _hub = (path, mtime, load_hub(path))
        return _store, _hub[2]


def reset_context() -> None:
    """Close the process's store and forget the hub: the next `context()` opens them again."""
    global _store, _hub
    with _context_lock:
        if _store is not None:
            _store.close()
        _store, _hub = None, None


def lock_for(name: str) -> Lock:
    """A lock shared by every worker: in Redis with the Redis broker, else a lease in the store."""
    broker, settings = runtime().broker, runtime().settings
    if isinstance(broker, RedisBroker):
        return RedisLock(broker.client, name, settings.lock_ttl)
    return StoreLease(context()[0], name, settings.lock_ttl)

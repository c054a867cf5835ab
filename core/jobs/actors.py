"""Dramatiq actors around the pipeline's steps (`core.pipeline.run`), one step each.

    intake(source) ─┐
    pull(source) ───┴─▶ score() ──▶ push(destination) for each destination with pending rows
    rescore_all(), decay()  ──▶ push(destination) for each destination with pending rows

A step asks for the next one with `request` (`core.jobs.pending`): at most one message per actor
and target waits in a queue, and it drains everything pending when it runs (dirty leads, pending
outbox rows), so a burst of webhook deliveries costs a handful of score and push messages.

Delivery is at least once, so every actor is safe to run twice: pulls upsert keyed pages, the
scorer rewrites only what changed, the outbox never resends what a destination accepted. Messages
carry names, never objects.

What happens around a step is middleware (`core.jobs.middleware`), declared here as options: one
pull per source runs at a time, and a pull that finds its source busy is dropped, since the
running one already covers it (`when_busy="drop"`); a score or push that finds its lock busy
comes back later instead, since the running one may have started before the change that sent it.
A step that fails raises its error: a RateLimited one comes back after the vendor's delay,
PERMANENT ones are dead-lettered at once, the rest retried a bounded number of times. Embedded,
queued messages live in memory: a restart forgets them, and the scheduler's next tick sends what
matters again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from core import metrics
from core.errors import AuthError, ConfigError, RequestRejected, SourceError
from core.jobs import intake as intake_list
from core.jobs.broker import context, declare, queues, request, runtime
from core.jobs.middleware import WhenBusy
from core.pipeline.outbox import outbox_counts, push_configured
from core.pipeline.pull import pull as pull_step
from core.pipeline.run import Leads, score_changed, take_leads
from core.store.store import Store

log = logging.getLogger("leadhub.jobs")

# Failures that no retry can fix: the message goes to the dead-letter queue at once, to be
# requeued (`leadhub dlq requeue`) once the setting or credential is fixed.
PERMANENT = (ConfigError, AuthError, RequestRejected, SourceError)
P = ParamSpec("P")


def actor(
    *, lock: str, when_busy: WhenBusy = "defer"
) -> Callable[[Callable[P, None]], dramatiq.Actor[P, None]]:
    """Declare an actor on the jobs' queue; PERMANENT errors go straight to the dead letters.

    Parameters:
        lock: held while the actor runs; formatted with the message's arguments ("push:{0}").
        when_busy: what becomes of a message that finds its lock held: "drop" or "defer".
    """
    return lambda fn: declare(fn, throws=PERMANENT, lock=lock, when_busy=when_busy)


@actor(lock="intake:{0}")
def intake(source: str) -> None:
    """Store the items webhook deliveries left in `source`'s intake list (`core.jobs.intake`),
    a page of up to `BATCH` at a time; then ask for a score."""
    store, hub = context()
    broker = runtime().broker
    if not isinstance(broker, RedisBroker):
        raise ConfigError("intake lists live in Redis: intake runs with LEADHUB_BROKER_URL set")
    client = broker.client
    while page := intake_list.next_page(client, source):
        take_leads(store, Leads(source, page), hub.field_priority)
        intake_list.done(client, source, len(page))
        log.info("took in %d item(s) from %s", len(page), source)
        request("score")


@actor(lock="pull:{0}", when_busy="drop")
def pull(source: str, full: bool = False) -> None:
    """Pull one source; then enqueue a score, also after a partial failure (the committed pages
    are worth scoring). `full` forgets the cursors on the first attempt only: a retry or a
    rate-limit deferral resumes after the last committed page instead of starting over."""
    store, hub = context()
    result = pull_step(store, hub, source, full=full and _first_attempt())
    metrics.record_run("pull", source, "ok" if result.ok else "failed", result.counts)
    if result.ok or result.counts.created or result.counts.updated:
        request("score")
    if result.exception is not None:
        raise result.exception


def _first_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or not (
        message.options.get("retries") or message.options.get("deferrals")
    )


@actor(lock="score")
def score() -> None:
    """Score the leads that changed since the last score, then push to every destination."""
    _score(full=False)


@actor(lock="score")
def rescore_all() -> None:
    """Score every lead again (after a model change, or on request), then push."""
    _score(full=True)


@actor(lock="score")
def decay() -> None:
    """The daily pass that lets inactivity decay and windows expire in stored scores.

    For now this is a full rescore: correct, and cheap enough at today's sizes; a pass over only
    the scores whose `next_change_at` has come is the next step.
    """
    _score(full=True)


def _score(*, full: bool) -> None:
    store, hub = context()
    run = score_changed(store, hub.models, full=full)
    if run is None:
        log.info("no scoring models configured; nothing to score")
        return
    metrics.record_run("score", "all", "ok")
    log.info("scored %d lead(s), %d changed", run.leads, run.changed)
    for name in hub.destinations:
        # Leads scored may change what a destination should hold (the push plans that); with
        # none scored, only rows already waiting (pending, or a retry) need a push.
        if run.leads or _waiting(store, name):
            request("push", name)


def _waiting(store: Store, destination: str) -> bool:
    counts = outbox_counts(store, destination).get(destination, {})
    return bool(counts.get("pending") or counts.get("retry"))


@actor(lock="push:{0}")
def push(destination: str) -> None:
    """Send one destination's pending outbox rows."""
    store, hub = context()
    result = push_configured(store, hub, destination)
    metrics.record_run("push", destination, "ok" if result.ok else "failed")
    if result.exception is not None:
        raise result.exception


# -- embedded mode -------------------------------------------------------------------------------


def start_worker(threads: int = 4) -> dramatiq.Worker:
    """Start worker threads in this process (embedded mode, or an in-process Redis worker)."""
    worker = dramatiq.Worker(runtime().broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def run_until_idle(threads: int = 4, timeout: float | None = None) -> None:
    """Embedded: work until the queue (delayed messages included) is empty, then stop."""
    broker, settings = runtime().broker, runtime().settings
    if not isinstance(broker, StubBroker):
        raise ConfigError("run_until_idle is for embedded mode (LEADHUB_BROKER_URL unset)")
    worker = start_worker(threads)
    wait = None if timeout is None else int(timeout * 1000)
    try:
        # A step on one queue sends the next on another: go round until a pass finds all empty.
        while True:
            for queue in queues(settings):
                if queue in broker.queues:
                    broker.join(queue, timeout=wait, fail_fast=False)
            worker.join()
            if all(broker.queues[q].unfinished_tasks == 0 for q in broker.queues):
                break
    finally:
        worker.stop()

"""Coalesced requests: at most one queued message per actor and target.

A webhook delivery or a finished pull does not send a `score` message of its own: it *requests*
one. The pending work itself is already in the store (leads flagged dirty, outbox rows pending);
what a request adds is a marker `leadhub:queued:<actor>:<target>` that says a message which will
drain that work is on its way. While the marker is set, further requests send nothing, so a burst
of N deliveries costs a handful of messages, not N.

The marker is removed when a worker starts the message, once it holds the actor's lock
(`core.jobs.middleware.Coalesce`): a request that arrives after that moment may find work the
running message has already read past, so it queues one more message, and only one.

With Redis the markers live in Redis beside the queues (with a time to live, so that a marker
whose message was purged by hand cannot block requests for ever); embedded, in this process.

    >>> send_once(broker, "leadhub.push", "push", "hubspot")   # doctest: +SKIP
    True
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

MARKER_TTL = 900
"""Seconds a marker outlives its message at most (a message purged from Redis by hand)."""

_local: set[str] = set()
_local_mutex = threading.Lock()


def marker(actor_name: str, args: tuple[Any, ...] | list[Any]) -> str:
    """The marker key of a request, e.g. `leadhub:queued:push:hubspot`."""
    return ":".join(["leadhub:queued", actor_name, *map(str, args)])


def send_once(
    broker: dramatiq.Broker, queue: str, actor_name: str, *args: str, **options: Any
) -> bool:
    """Send one message to the actor named `actor_name` on `queue` unless one is already queued.

    Returns whether a message was sent. `options` are message options (`late_after`, …).
    `core.jobs.broker.request` calls this with the configured broker and the actor's queue.
    """
    key = marker(actor_name, args)
    if not _mark(broker, key):
        return False
    message: Message[Any] = Message(
        queue_name=queue, actor_name=actor_name, args=args, kwargs={}, options=options
    )
    try:
        broker.declare_queue(queue)
        broker.enqueue(message)
    except BaseException:
        clear(broker, key)
        raise
    return True


def is_queued(broker: dramatiq.Broker, actor_name: str, *args: str) -> bool:
    """Whether a request for this actor and target waits in a queue."""
    key = marker(actor_name, args)
    if isinstance(broker, RedisBroker):
        return bool(broker.client.exists(key))
    with _local_mutex:
        return key in _local


def _mark(broker: dramatiq.Broker, key: str) -> bool:
    if isinstance(broker, RedisBroker):
        return bool(broker.client.set(key, "1", nx=True, ex=MARKER_TTL))
    with _local_mutex:
        if key in _local:
            return False
        _local.add(key)
        return True


def clear(broker: dramatiq.Broker, key: str) -> None:
    """Remove a marker: the next request for that actor and target sends a message again."""
    if isinstance(broker, RedisBroker):
        broker.client.delete(key)
        return
    with _local_mutex:
        _local.discard(key)


def forget_local() -> None:
    """Drop every in-process marker (a new embedded broker starts with empty queues)."""
    with _local_mutex:
        _local.clear()

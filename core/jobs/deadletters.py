"""The dead-letter queue: messages that failed for good, listed and put back by `leadhub dlq`.

A message lands here when its retries are exhausted, or at once when it failed in a way no retry
fixes (bad configuration, refused credentials). With Redis, dramatiq itself keeps them in
`dramatiq:<queue>.XQ` of each queue (for 7 days) and this module adds the final error beside
them; embedded, the in-memory stub broker would forget them, so each is kept as a
`dead_letter:<id>` row in the store's `meta` table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
import sqlalchemy as sa
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from core.errors import ConfigError
from core.store.store import META, Store

log = logging.getLogger("leadhub.jobs")
ERRORS_KEY = "leadhub:dead_letter_errors"
META_PREFIX = "dead_letter:"


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message. `id` is dramatiq's message id (shown, and accepted by requeue)."""

    id: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    failed_at: datetime
    retries: int
    error: str
    ref: str  # where it is kept: the Redis message id, or the meta key
    queue: str = ""  # the queue it came from (and goes back to)

    @property
    def target(self) -> str:
        """The source or destination the message was about ('' for score and the like)."""
        return str(self.args[0]) if self.args else ""

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("ref", "queue")}
        data["failed_at"] = self.failed_at.isoformat()
        return data


def _describe(message: Any) -> str:
    exception = getattr(message, "_exception", None)
    if exception is None:
        return "failed (no exception recorded)"
    return f"{type(exception).__name__}: {exception}"


def _now() -> datetime:
    return datetime.now(UTC)


class DeadLetters(Middleware):
    """Records the final error of every dead-lettered message (and, embedded, the message).

    Parameters:
        queue: the queue the actors use.
        store: returns the store, for embedded mode; only called when a message dies there.
    """

    def __init__(self, queue: str, store: Callable[[], Store]) -> None:
        self.queue = queue
        self.store = store
        # Retries done before the current attempt, by message id: Retries bumps the count in
        # place when an attempt fails, so it is read before the attempt runs.
        self._retries: dict[str, int] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._retries[message.message_id] = int(message.options.get("retries", 0))

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
        if not message.failed:
            self._retries.pop(message.message_id, None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._retries.pop(message.message_id, None)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        retries = self._retries.pop(message.message_id, int(message.options.get("retries", 0)))
        error, failed_at = _describe(message), _now().isoformat()
        log.error(
            "%s%r dead-lettered after %d retries: %s",
            message.actor_name,
            tuple(message.args),
            retries,
            error,
        )
        record: dict[str, Any] = {"error": error, "failed_at": failed_at, "retries": retries}
        if isinstance(broker, RedisBroker):
            broker.client.hset(ERRORS_KEY, message.options["redis_message_id"], json.dumps(record))
            return
        record["message"] = message.asdict()
        self.store().set_meta(META_PREFIX + message.message_id, json.dumps(record, default=str))


Queues = str | Sequence[str]


def list_dead_letters(broker: dramatiq.Broker, queues: Queues, store: Store) -> list[DeadLetter]:
    """Every dead letter of `queues` (with Redis; embedded, of all), oldest first."""
    if isinstance(broker, RedisBroker):
        names = [queues] if isinstance(queues, str) else list(queues)
        letters = [d for q in names for d in _redis_letters(broker, q)]
        _forget_expired(broker, {d.ref for d in letters})
        return sorted(letters, key=lambda d: d.failed_at)
    return _store_letters(store)


def requeue(
    broker: dramatiq.Broker, queues: Queues, store: Store, ids: Sequence[str]
) -> list[DeadLetter]:
    """Put the dead letters named by `ids` (or unique prefixes of them) back on the queue.

    They go back as fresh messages (retries reset, same message id). Raises ConfigError naming
    any id that matches no letter, or more than one.
    """
    letters = list_dead_letters(broker, queues, store)
    chosen = [_match(letters, wanted) for wanted in ids]
    requeued = []
    for letter in chosen:
        message = _take(broker, letter.queue, store, letter)
        if message is None:  # someone else requeued it a moment ago
            continue
        fresh: Message[Any] = Message(
            queue_name=q_name(message.queue_name),
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options={},
            message_id=message.message_id,
        )
        broker.enqueue(fresh)
        requeued.append(letter)
    return requeued


def _match(letters: Sequence[DeadLetter], wanted: str) -> DeadLetter:
    found = [d for d in letters if d.id.startswith(wanted)]
    if len(found) != 1:
        what = "no dead letter" if not found else f"{len(found)} dead letters"
        raise ConfigError(f"{what} with an id starting {wanted!r} (see `leadhub dlq`)")
    return found[0]


def _take(
    broker: dramatiq.Broker, queue: str, store: Store, letter: DeadLetter
) -> Message[Any] | None:
    """Remove one letter from where it is kept and return its message; None if already gone."""
    if isinstance(broker, RedisBroker):
        xq = f"{broker.namespace}:{queue}.XQ"
        data = broker.client.hget(f"{xq}.msgs", letter.ref)
        # ZREM answers 1 to exactly one caller, so two requeues can never both send it.
        if data is None or not broker.client.zrem(xq, letter.ref):
            return None
        broker.client.hdel(f"{xq}.msgs", letter.ref)
        broker.client.hdel(ERRORS_KEY, letter.ref)
        return Message.decode(data)
    with store.begin() as conn:
        mine = META.c.key == letter.ref
        value = conn.execute(sa.select(META.c.value).where(mine)).scalar()
        # Only the caller whose DELETE removed the row sends it again.
        if value is None or conn.execute(META.delete().where(mine)).rowcount != 1:
            return None
    return Message(**json.loads(value)["message"])


def _redis_letters(broker: RedisBroker, queue: str) -> list[DeadLetter]:
    client = broker.client
    xq = f"{broker.namespace}:{queue}.XQ"
    refs = [ref.decode() for ref, _ in client.zrange(xq, 0, -1, withscores=True)]
    if not refs:
        return []
    datas = client.hmget(f"{xq}.msgs", refs)
    errors = client.hmget(ERRORS_KEY, refs)
    letters = []
    for ref, data, error in zip(refs, datas, errors, strict=True):
        if data is None:
            continue
        extra = json.loads(error) if error else {}
        letters.append(_letter(Message.decode(data), extra, ref, queue))
    return letters


def _forget_expired(broker: RedisBroker, alive: set[str]) -> None:
    # dramatiq drops letters after its dead_message_ttl; drop our error notes for them too.
    gone = [k for k in (k.decode() for k in broker.client.hkeys(ERRORS_KEY)) if k not in alive]
    if not alive:
        broker.client.delete(ERRORS_KEY)
        return
    if gone:
        broker.client.hdel(ERRORS_KEY, *gone)


def _store_letters(store: Store) -> list[DeadLetter]:
    query = sa.select(META.c.key, META.c.value).where(META.c.key.startswith(META_PREFIX))
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
    letters = []
    for key, value in rows:
        record = json.loads(value)
        letters.append(_letter(Message(**record["message"]), record, key))
    return sorted(letters, key=lambda d: d.failed_at)


def _letter(message: Message[Any], extra: dict[str, Any], ref: str, queue: str = "") -> DeadLetter:
    failed = extra.get("failed_at")
    return DeadLetter(
        id=message.message_id,
        actor=message.actor_name,
        args=list(message.args),
        kwargs=dict(message.kwargs),
        failed_at=datetime.fromisoformat(failed) if failed else message.message_datetime,
        retries=int(extra.get("retries", message.options.get("retries", 0))),
        error=extra.get("error") or _last_line(message.options.get("traceback")),
        ref=ref,
        queue=queue or message.queue_name,
    )


def _last_line(traceback: str | None) -> str:
    lines = (traceback or "").strip().splitlines()
    return lines[-1] if lines else "unknown error"

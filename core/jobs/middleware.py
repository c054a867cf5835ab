"""The jobs' own dramatiq middleware: what happens around an actor, so that its body is the work.

    LateTicks    logs (and counts) a periodic message that starts later than its `late_after`;
                 it still runs, once: a due pull is never dropped
    BusyLocks    holds the actor's lock while it runs; a busy lock drops the message or brings it
                 back later, as the actor declares
    Coalesce     takes a coalesced request off the books once its message holds the lock
    Retries      dramatiq's bounded retries, plus: a RateLimited failure comes back after the
                 vendor's delay without spending a retry

Actors declare what they need as options, e.g. `lock="push:{0}"` (formatted with the message's
arguments) and `when_busy="drop"`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import dramatiq
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware, SkipMessage
from dramatiq.middleware import Retries as DramatiqRetries

from core import metrics
from core.errors import RateLimited
from core.jobs import pending
from core.jobs.locks import Lock, held

log = logging.getLogger("leadhub.jobs")
WhenBusy = Literal["drop", "defer"]


class LateTicks(Middleware):
    """Says so when a message starts later than its `late_after` option (ms), and runs it.

    The scheduler sets `late_after` = one period on periodic messages. A tick that waited that
    long (workers busy, or down) is late, not stale: dropping it would leave its source unpulled
    until a tick happens to find a free worker. Ticks are coalesced when sent (one queued per
    source), so a late tick runs once however many periods it waited.
    """

    @property
    def actor_options(self) -> set[str]:
        return {"late_after"}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        late_after = message.options.get("late_after")
        waited = current_millis() - message.message_timestamp
        if late_after and waited >= late_after:
            log.warning("%s%r runs %.0f s late (due every %.0f s)", message.actor_name,
                        tuple(message.args), waited / 1000, late_after / 1000)  # fmt: skip
            metrics.LATE.labels(message.actor_name).inc()


class Coalesce(Middleware):
    """Clears the request marker (`core.jobs.pending`) of a message as it starts.

    Listed after BusyLocks, so this runs only once the actor's lock is held: a message that finds
    its lock busy and comes back later still stands for every request made meanwhile.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        pending.clear(broker, pending.marker(message.actor_name, message.args))


class BusyLocks(Middleware):
    """Runs an actor that declares `lock` only while holding that lock (renewed while it runs).

    When another worker holds it, `when_busy="drop"` acknowledges the message unrun (the running
    one covers it: a pull reads everything new anyway); `"defer"`, the default, sends it again
    after `busy_delay` seconds, since the running one may have started before the change that
    sent this message.

    Parameters:
        locks: the lock of a name, shared by every worker (Redis, or a lease in the store).
        busy_delay: seconds before a deferred message comes back.
    """

    def __init__(self, locks: Callable[[str], Lock], busy_delay: float) -> None:
        self.locks, self.busy_delay = locks, busy_delay
        self._held: dict[str, contextlib.ExitStack] = {}
        self._mutex = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        return {"lock", "when_busy"}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        actor = broker.get_actor(message.actor_name)
        template: str | None = actor.options.get("lock")
        if template is None:
            return
        stack = contextlib.ExitStack()
        lock = stack.enter_context(held(self.locks(template.format(*message.args))))
        if lock.acquired:
            with self._mutex:
                self._held[message.message_id] = stack
            return
        stack.close()
        what = f"{message.actor_name}{tuple(message.args)!r}"
        if actor.options.get("when_busy", "defer") == "drop":
            log.warning("%s is already running (%s); dropped", what, lock.lock.holder())
            metrics.DROPPED.labels(message.actor_name, "busy").inc()
            # Gone unrun: a request made from now on must queue a message again.
            pending.clear(broker, pending.marker(message.actor_name, message.args))
        else:
            log.info("%s is busy; coming back in %.0f s", what, self.busy_delay)
            metrics.DEFERRED.labels(message.actor_name).inc()
            actor.send_with_options(
                args=tuple(message.args), kwargs=message.kwargs, delay=_ms(self.busy_delay)
            )
        raise SkipMessage("its lock is busy")

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
        self._release(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release(message)

    def _release(self, message: Any) -> None:
        with self._mutex:
            stack = self._held.pop(message.message_id, None)
        if stack is not None:
            stack.close()


class Retries(DramatiqRetries):
    """dramatiq's Retries (bounded, with backoff; `throws` dead-letters at once), except that a
    RateLimited failure is sent again after the vendor's Retry-After (or `default_retry_after`),
    counted in the message's `deferrals`. After `max_deferrals` of them it is an ordinary failure:
    an account that stays throttled that long is for a person to look at.
    """

    def __init__(self, *, max_deferrals: int, default_retry_after: float, **options: Any) -> None:
        super().__init__(**options)
        self.max_deferrals = max_deferrals
        self.default_retry_after = default_retry_after

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        deferrals = int(message.options.get("deferrals", 0))
        if not isinstance(exception, RateLimited) or deferrals >= self.max_deferrals:
            super().after_process_message(  # type: ignore[no-untyped-call]
                broker, message, result=result, exception=exception
            )
            return
        delay = exception.retry_after or self.default_retry_after
        log.warning("%s%r rate limited; handing it back for %.0f s",
                    message.actor_name, tuple(message.args), delay)  # fmt: skip
        metrics.DEFERRED.labels(message.actor_name).inc()
        broker.get_actor(message.actor_name).send_with_options(
            args=tuple(message.args),
            kwargs=message.kwargs,
            delay=_ms(delay),
            deferrals=deferrals + 1,
        )


def _ms(seconds: float) -> int:
    return int(seconds * 1000)

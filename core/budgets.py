"""Request budgets per vendor account and the pagination guard."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from core.errors import PaginationError
from core.redaction import redact


class RateBudget(Protocol):
    """A request budget per vendor account, shared by every client that calls it."""

    def acquire(self, key: str) -> None:
        """Block until one more request to the account `key` fits the budget."""
        ...


class LocalRateBudget:
    """In-process, thread-safe sliding-window limiter: at most `rate` requests per `per_seconds`.

    The window is exact (it keeps the last `rate` admission times per key), so no span of
    `per_seconds` ever holds more than `rate` requests. Vendors count that way (HubSpot's
    TEN_SECONDLY_ROLLING); a token bucket would let twice the rate through across a window boundary.
    """

    def __init__(
        self,
        rate: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 1 or per_seconds <= 0:
            raise ValueError(
                f"rate budget needs rate >= 1 and per_seconds > 0, got {rate}/{per_seconds}"
            )
        self.rate, self.per_seconds = rate, per_seconds
        self._clock, self._sleep = clock, sleep
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> None:
        """Block until a request to `key` fits, then count it."""
        while (wait := self._try_admit(key)) > 0:
            self._sleep(wait)  # outside the lock, so other accounts are not held up

    def _try_admit(self, key: str) -> float:
        """Admit now and return 0, or return the wait until the oldest admission leaves."""
        with self._lock:
            now = self._clock()
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - self.per_seconds:
                window.popleft()
            if len(window) < self.rate:
                window.append(now)
                return 0.0
            return window[0] + self.per_seconds - now


# -- pagination ----------------------------------------------------------------------------------


class PaginationGuard:
    """Turns a vendor that hands back a cursor it already gave into an error, not an endless loop.

    Example: `guard = PaginationGuard("hubspot.contacts")`, then `guard.check(cursor)` per page.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._seen: set[str] = set()

    def check(self, cursor: object) -> None:
        """Raise PaginationError if `cursor` was seen before; None (no next page) passes."""
        if cursor is None:
            return
        try:  # dict cursors compare by value, whatever their key order
            key = json.dumps(cursor, sort_keys=True, default=str)
        except (TypeError, ValueError):
            key = repr(cursor)
        if key in self._seen:
            shown = redact(key)[:120]
            raise PaginationError(
                f"stream {self.stream}: the vendor returned cursor {shown} a second time (after "
                f"{len(self._seen)} pages); stopped instead of looping forever. This is a vendor "
                "bug: run a full sync later, or report it to the vendor with this cursor."
            )
        self._seen.add(key)

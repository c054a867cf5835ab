"""Request budgets per vendor account: in-process, or shared by every worker through Redis.

    RateBudget            acquire(key) blocks until one more request to the account fits
    ├── LocalRateBudget   sliding window in this process (tests, single-process runs)
    └── RedisRateBudget   the same window in Redis, shared by every worker on every machine

`budget_for(rate, per_seconds)` picks the Redis one when jobs run on Redis (`LEADHUB_BROKER_URL`)
and the in-process one otherwise. Connectors reach these through `core.http`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import redis

from core import metrics
from core.errors import RateLimited
from core.settings import Settings


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


# -- shared in Redis -------------------------------------------------------------------------------
#
# Each vendor account (the key, e.g. `hubspot:12345`) has a sorted set of its admission times; one
# Lua script drops the ones that left the window, counts the rest and admits or answers how long
# to wait, atomically, on Redis's own clock, so no two workers on any machines can both take the
# last slot and clocks never disagree.
#
# Times are microseconds: a double holds them exactly (2^53 µs is 285 years).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RedisRateBudget:
    """At most `rate` requests per `per_seconds` to each account key, across all processes.

    Parameters:
        client: a redis client (the broker's Redis will do).
        rate, per_seconds: the vendor's limit, e.g. 100 per 10 s.
        margin: seconds added to the window. Vendors count requests when they arrive, and a
            request leaves a little after it is admitted; the margin absorbs that jitter so it
            cannot carry one request too many into a vendor's window.
        max_wait: a wait longer than this raises RateLimited (with `retry_after`) instead of
            holding the thread, so the jobs layer hands the message back with a delay.
    """

    def __init__(
        self,
        client: redis.Redis[Any],
        rate: int,
        per_seconds: float,
        *,
        margin: float = 0.05,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 1 or per_seconds <= 0:
            raise ValueError(
                f"rate budget needs rate >= 1 and per_seconds > 0, got {rate}/{per_seconds}"
            )
        self.client = client
        self.rate, self.per_seconds = rate, per_seconds
        self.window_us = int((per_seconds + margin) * 1_000_000)
        self.max_wait = max_wait
        self._sleep = sleep
        self._admit = client.register_script(_ADMIT)

    def acquire(self, key: str) -> None:
        """Block until one more request to `key` fits; raise RateLimited if that is too long."""
        waited = 0.0
        while (wait := self.try_acquire(key)) > 0:
            if waited + wait > self.max_wait:
                raise RateLimited(
                    f"rate budget {key}: {self.rate} requests per {self.per_seconds:g} s are "
                    f"used up for the next {wait:.1f} s; the job is rescheduled",
                    status=None,
                    retry_after=wait,
                )
            self._sleep(wait)
            waited += wait
        if waited:
            metrics.record_rate_wait(key, waited)

    def try_acquire(self, key: str) -> float:
        """Admit one request now and return 0, or return the seconds until a slot frees."""
        member = uuid.uuid4().hex
        wait_us = self._admit(
            keys=[f"leadhub:rate:{key}"], args=[self.rate, self.window_us, member]
        )
        return int(wait_us) / 1_000_000


def budget_for(rate: int, per_seconds: float, broker_url: str | None = None) -> RateBudget:
    """The budget connectors should use: shared in Redis when jobs run there, else in-process.

    `broker_url` defaults to `LEADHUB_BROKER_URL`.
    """
    url = broker_url if broker_url is not None else Settings().broker_url
    if url:
        return RedisRateBudget(redis.Redis.from_url(url), rate, per_seconds)
    return LocalRateBudget(rate, per_seconds)

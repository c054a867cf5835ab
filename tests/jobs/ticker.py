"""A test-only `ticker` source, registered when this module is imported (in tests and workers).

It reads `pages` pages of `per_page` leads, sleeping `delay` before each page, and records in Redis
what a test needs to see from outside the worker process:

- `ticker:<name>:events`: "enter <pid> <first page>" / "exit <pid>" as reads start and end;
  the list order is Redis's own, so overlap shows as two enters in a row, whatever the clocks.
- `ticker:<name>:at`: "<page> <pid>" of the page being read now.

`fail` makes it fail: `transient`, `auth`, or `ratelimit_once` (a RateLimited with a short
Retry-After on page 1 of the first pull only).

Workers import it with `leadhub worker --module tests.jobs.ticker`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import redis

import connectors.base.registry as base
from connectors.base.contract import ConnectorSettings, Cursor, Page, SourceContext
from core.errors import AuthError, RateLimited, TransientError
from core.records import LeadRecord


class TickerSettings(ConnectorSettings):
    pages: int = 3
    per_page: int = 5
    delay: float = 0.0
    redis_url: str
    fail: Literal["none", "transient", "auth", "ratelimit_once"] = "none"


class TickerStream:
    name = "leads"

    def __init__(self, source: str, settings: TickerSettings) -> None:
        self.source, self.settings = source, settings
        self.redis = redis.Redis.from_url(settings.redis_url)

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        key, start = f"ticker:{self.source}", (cursor or {}).get("page", 0)
        self.redis.rpush(f"{key}:events", f"enter {os.getpid()} {start}")
        try:
            for page in range(start, self.settings.pages):
                self.redis.set(f"{key}:at", f"{page} {os.getpid()}")
                time.sleep(self.settings.delay)
                self._maybe_fail(page)
                yield Page(self._leads(page), {"page": page + 1})
        finally:
            self.redis.rpush(f"{key}:events", f"exit {os.getpid()}")

    def _leads(self, page: int) -> list[Any]:
        return [
            LeadRecord(
                source=self.source,
                external_id=f"{page}-{i}",
                email=f"p{page}.i{i}@{self.source}.test",
                job_title="Director" if i % 2 else "Analyst",
            )
            for i in range(self.settings.per_page)
        ]

    def _maybe_fail(self, page: int) -> None:
        fail = self.settings.fail
        if fail == "transient":
            raise TransientError("ticker: the vendor is down")
        if fail == "auth":
            raise AuthError("ticker: token refused; renew it")
        limited = f"ticker:{self.source}:limited"
        if fail == "ratelimit_once" and page == 1 and self.redis.incr(limited) == 1:
            raise RateLimited("ticker: slow down", retry_after=0.3)


class TickerSource:
    def __init__(self, name: str, settings: TickerSettings) -> None:
        self.name, self.settings = name, settings

    def streams(self) -> Sequence[TickerStream]:
        return [TickerStream(self.name, self.settings)]


class TickerConnector:
    name: ClassVar[str] = "ticker"
    settings_model: ClassVar[type[ConnectorSettings]] = TickerSettings

    def source(self, settings: Any, context: SourceContext) -> TickerSource:
        return TickerSource(context.name, settings)


def _register() -> None:
    original = base.load_connectors
    if getattr(original, "with_ticker", False):
        return

    def load_connectors() -> dict[str, Any]:
        return {**original(), "ticker": TickerConnector}

    load_connectors.with_ticker = True  # type: ignore[attr-defined]
    base.load_connectors = load_connectors


_register()

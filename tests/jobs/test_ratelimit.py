"""The shared rate budget: never more than the vendor's rate in any window, across processes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from core.budgets import RedisRateBudget
from core.errors import RateLimited
from tests.jobs.conftest import Processes, wait_for, write_hub


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_admits_the_rate_then_waits_for_the_oldest_to_leave(client: redis.Redis) -> None:
    budget = RedisRateBudget(client, 3, 0.5, margin=0)
    started = time.monotonic()
    for _ in range(3):
        budget.acquire("acct")
    assert time.monotonic() - started < 0.2
    budget.acquire("acct")
    assert time.monotonic() - started >= 0.45


def test_accounts_have_budgets_of_their_own(client: redis.Redis) -> None:
    budget = RedisRateBudget(client, 1, 10)
    budget.acquire("hubspot:1")
    assert budget.try_acquire("hubspot:2") == 0
    assert 9 < budget.try_acquire("hubspot:1") <= 10.05


def test_a_wait_too_long_to_hold_a_thread_raises_with_retry_after(client: redis.Redis) -> None:
    budget = RedisRateBudget(client, 1, 60, max_wait=0.5)
    budget.acquire("mailchimp:us1")
    with pytest.raises(RateLimited) as caught:
        budget.acquire("mailchimp:us1")
    assert caught.value.retry_after is not None
    assert 59 < caught.value.retry_after <= 60.05
    assert "rescheduled" in str(caught.value)


class CountingServer:
    """Records the arrival time and worker pid of every request on 127.0.0.1."""

    def __init__(self) -> None:
        self.hits: list[tuple[float, str]] = []
        hits, lock = self.hits, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    hits.append((time.time(), self.headers.get("X-Worker", "")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    s = CountingServer()
    yield s
    s.close()


@pytest.mark.e2e
def test_four_workers_sharing_ten_per_second_never_exceed_it(
    redis_url: str, tmp_path: Path, processes: Processes, server: CountingServer
) -> None:
    from tests.jobs import caller  # declares the actor on this process's broker too

    client = redis.Redis.from_url(redis_url)
    env = {
        "LEADHUB_BROKER_URL": redis_url,
        "LEADHUB_CONFIG": str(write_hub(tmp_path / "leadhub.yaml", {})),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
    }
    processes.leadhub(
        "worker", "-p", "4", "-t", "2", "-m", "tests.jobs.caller", env=env, name="workers"
    )
    wait_for(lambda: client.zcard("dramatiq:__heartbeats__") >= 4, 30, "four worker processes")
    messages, calls = 16, 3
    broker = _redis_broker(redis_url)
    for _ in range(messages):
        broker.enqueue(caller.call_vendor.message(server.url, calls))
    wait_for(lambda: len(server.hits) >= messages * calls, 30, "every call to arrive")

    times = sorted(t for t, _ in server.hits)
    per_second = Counter(int(t) for t in times)
    assert max(per_second.values()) <= caller.RATE, per_second
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= caller.RATE  # no sliding one-second window either
    assert len({pid for _, pid in server.hits}) >= 3  # the budget really was shared
    assert times[-1] - times[0] >= (messages * calls / caller.RATE) - 1.2


def _redis_broker(url: str) -> RedisBroker:
    """A plain client of the workers' broker, for sending from this (embedded) test process."""
    return RedisBroker(url=url)

"""The scheduler: only the lock holder enqueues; a standby takes over when the holder stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from dramatiq.message import Message

from core.jobs.locks import RedisLock, StoreLease
from core.jobs.pending import marker
from core.jobs.scheduler import HubScheduler, next_run, parse_schedule, period
from core.store.store import Store
from tests.jobs.conftest import Processes, wait_for, write_hub


def ticker_hub(path: Path, redis_url: str, schedule: str = "* * * * * *") -> Path:
    source = {"connector": "ticker", "redis_url": redis_url, "schedule": schedule}
    return write_hub(path, {"alpha": source, "idle": {**source, "schedule": None}})


def test_schedules_are_cron_lines_with_optional_seconds() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    assert next_run("*/15 * * * *", now) == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert next_run("*/10 * * * * *", now) == datetime(2026, 3, 1, 10, 7, 40, tzinfo=UTC)
    assert period(parse_schedule("*/15 * * * *"), now) == timedelta(minutes=15)
    with pytest.raises(Exception, match="5 cron fields"):
        parse_schedule("every day")


def test_only_the_lock_holder_enqueues_and_a_standby_takes_over(
    tmp_path: Path, redis_url: str
) -> None:
    from tests.jobs import ticker  # noqa: F401

    hub = ticker_hub(tmp_path / "leadhub.yaml", redis_url)
    store = Store(f"sqlite:///{tmp_path / 'leadhub.db'}")
    sent: dict[str, list[tuple[str, str | None, int]]] = {"a": [], "b": []}

    def scheduler(name: str) -> tuple[HubScheduler, threading.Event, threading.Thread]:
        lease = StoreLease(store, "scheduler", ttl=1.0)
        hs = HubScheduler(hub, lease, decay_schedule=None, enqueue=lambda *m: sent[name].append(m))
        stop = threading.Event()
        thread = threading.Thread(target=hs.run, args=(stop,))
        thread.start()
        return hs, stop, thread

    a, stop_a, thread_a = scheduler("a")
    wait_for(lambda: a.active, 2, "the first scheduler to take the lock")
    b, stop_b, thread_b = scheduler("b")
    try:
        wait_for(lambda: len(sent["a"]) >= 2, 5, "two ticks from the active scheduler")
        assert sent["b"] == [] and not b.active
        assert set(sent["a"]) == {("pull", "alpha", 1000)}  # late after one period
        stop_a.set()
        thread_a.join()
        started = time.monotonic()
        wait_for(lambda: sent["b"], 3, "the standby to take over")
        assert time.monotonic() - started < 1.0 + b.poll + 1.0
    finally:
        stop_a.set()
        stop_b.set()
        thread_a.join()
        thread_b.join()
        store.close()


class Taker:
    """Takes pull ticks off the Redis queue as a worker would (message gone, request marker
    cleared), keeping them to look at; the scheduler then sends the next tick."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.taken = client, []

    def __call__(self) -> list[Message[object]]:
        for message_id, data in self.client.hgetall("dramatiq:leadhub.pull.msgs").items():
            message = Message.decode(data)
            self.client.hdel("dramatiq:leadhub.pull.msgs", message_id)
            self.client.lrem("dramatiq:leadhub.pull", 0, message_id)
            self.client.delete(marker(message.actor_name, message.args))
            self.taken.append(message)
        return self.taken


@pytest.mark.e2e
def test_a_second_scheduler_process_stays_idle_until_the_first_is_killed(
    tmp_path: Path, redis_url: str, processes: Processes
) -> None:
    client = redis.Redis.from_url(redis_url)
    env = {
        "LEADHUB_BROKER_URL": redis_url,
        "LEADHUB_CONFIG": str(ticker_hub(tmp_path / "leadhub.yaml", redis_url)),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'leadhub.db'}",
    }
    taker = Taker(client)
    first = processes.leadhub("scheduler", env=env, name="scheduler-1")
    lock = RedisLock(client, "scheduler", ttl=2)
    token_1 = wait_for(lock.holder, 20, "the first scheduler to hold the lock")
    processes.leadhub("scheduler", env=env, name="scheduler-2")
    wait_for(lambda: len(taker()) >= 3, 10, "ticks from the first scheduler")
    time.sleep(1.5)  # the second one has been up and polling for a while now
    ticks = taker()
    assert {m.options["scheduled_by"] for m in ticks} == {token_1}
    assert {(m.actor_name, m.args) for m in ticks} == {("pull", ("alpha",))}
    assert {m.options["late_after"] for m in ticks} == {1000}  # one period

    processes.kill(first)  # SIGKILL: no release, the lock has to expire
    killed = time.monotonic()
    token_2 = wait_for(lambda: (lock.holder() or token_1) != token_1 and lock.holder(), 10,
                       "the second scheduler to take the lock")  # fmt: skip
    # the lock's ttl + one poll, with slack for a busy two-core machine
    assert time.monotonic() - killed <= 2.0 + 2.0 / 5 + 1.5
    wait_for(
        lambda: {m.options["scheduled_by"] for m in taker()} == {token_1, token_2},
        3,
        "a tick from the second scheduler",
    )


@pytest.mark.e2e
def test_a_tick_whose_pull_is_still_queued_sends_nothing(
    tmp_path: Path, redis_url: str, processes: Processes
) -> None:
    client = redis.Redis.from_url(redis_url)
    env = {
        "LEADHUB_BROKER_URL": redis_url,
        "LEADHUB_CONFIG": str(ticker_hub(tmp_path / "leadhub.yaml", redis_url)),
        "LEADHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'leadhub.db'}",
    }
    processes.leadhub("scheduler", env=env, name="scheduler")
    # No worker takes it: the first tick waits, and the ticks due every second after it are
    # covered by it (it pulls everything new when it runs), so the queue holds one pull.
    wait_for(lambda: client.hlen("dramatiq:leadhub.pull.msgs"), 20, "the first tick")
    time.sleep(3)  # three more ticks due
    assert client.hlen("dramatiq:leadhub.pull.msgs") == 1

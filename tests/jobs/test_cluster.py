"""Jobs across processes: dramatiq workers on Redis, the store on PostgreSQL.

Pins what the issue asks of a company deployment: two pulls of one source never overlap, and a
worker killed in the middle of a pull loses nothing and duplicates nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from dramatiq.brokers.redis import RedisBroker

from core.store.store import SYNC_RUN, Store
from tests.jobs.conftest import QUEUES, Processes, wait_for, write_hub

pytestmark = pytest.mark.e2e


def events(client: redis.Redis, source: str) -> list[list[str]]:
    return [e.decode().split() for e in client.lrange(f"ticker:{source}:events", 0, -1)]


def pull_runs(store: Store) -> list[str]:
    query = sa.select(SYNC_RUN.c.status).where(SYNC_RUN.c.kind == "pull").order_by(SYNC_RUN.c.id)
    with store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def idle(client: redis.Redis) -> bool:
    """No message waiting, delayed or in progress (dramatiq keeps each until it is acked)."""
    return not any(client.hlen(f"dramatiq:{q}.msgs") for q in QUEUES)


def cluster_env(tmp_path: Path, redis_url: str, pg_url: str, **ticker: Any) -> dict[str, str]:
    source = {"connector": "ticker", "redis_url": redis_url, **ticker}
    Store(pg_url).close()  # migrate once here, not racing in every worker
    return {
        "LEADHUB_BROKER_URL": redis_url,
        "LEADHUB_DATABASE_URL": pg_url,
        "LEADHUB_CONFIG": str(write_hub(tmp_path / "leadhub.yaml", {"alpha": source})),
    }


def send_pulls(redis_url: str, source: str, count: int) -> None:
    from core.jobs import actors as jobs

    broker = RedisBroker(url=redis_url)
    for _ in range(count):
        broker.enqueue(jobs.pull.message(source))


def test_the_overlap_detector_sees_overlap_when_nothing_prevents_it(redis_url: str) -> None:
    """Control: two reads of one ticker without the jobs layer do overlap, and the list shows it."""
    from tests.jobs.ticker import TickerSettings, TickerStream

    settings = TickerSettings(connector="ticker", pages=2, delay=0.2, redis_url=redis_url)
    readers = [
        threading.Thread(target=lambda: list(TickerStream("free", settings).read(None)))
        for _ in range(2)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    kinds = [e[0] for e in events(redis.Redis.from_url(redis_url), "free")]
    assert kinds[:2] == ["enter", "enter"]


def test_pulls_of_one_source_sent_at_once_never_overlap(
    tmp_path: Path, redis_url: str, pg_url: str, processes: Processes
) -> None:
    client = redis.Redis.from_url(redis_url)
    env = cluster_env(tmp_path, redis_url, pg_url, pages=4, per_page=3, delay=0.25)
    processes.leadhub("worker", "-p", "2", "-t", "2", "-m", "tests.jobs.ticker", env=env,
                      name="workers")  # fmt: skip
    wait_for(lambda: client.zcard("dramatiq:__heartbeats__") >= 2, 30, "two worker processes")
    send_pulls(redis_url, "alpha", 6)
    wait_for(lambda: idle(client) and len(events(client, "alpha")) >= 2, 30, "the pulls to end")

    seen = events(client, "alpha")
    enters, exits = seen[0::2], seen[1::2]
    assert [e[0] for e in enters] == ["enter"] * len(enters), seen
    assert [e[0] for e in exits] == ["exit"] * len(enters), seen
    assert [e[1] for e in enters] == [e[1] for e in exits]  # each exit closes its own enter
    store = Store(pg_url, migrate=False)
    assert pull_runs(store) == ["ok"] * len(enters)
    assert 1 <= len(enters) < 6  # the pulls that found alpha busy were dropped, not queued
    assert store.count("lead") == store.count("identity") == 12
    store.close()


def test_a_worker_killed_mid_pull_is_redelivered_without_loss_or_duplicates(
    tmp_path: Path, redis_url: str, pg_url: str, processes: Processes
) -> None:
    client = redis.Redis.from_url(redis_url)
    env = cluster_env(tmp_path, redis_url, pg_url, pages=8, per_page=5, delay=0.3)
    first = processes.leadhub("worker", "-p", "1", "-t", "1", "-m", "tests.jobs.ticker",
                              env=env, name="worker-1")  # fmt: skip
    wait_for(lambda: client.zcard("dramatiq:__heartbeats__") >= 1, 30, "the first worker")
    send_pulls(redis_url, "alpha", 1)
    wait_for(lambda: int((client.get("ticker:alpha:at") or b"0").split()[0]) >= 3, 20, "page 3")
    processes.kill(first)  # SIGKILL, mid-page: the message is never acked

    processes.leadhub("worker", "-p", "1", "-t", "2", "-m", "tests.jobs.ticker", env=env,
                      name="worker-2")  # fmt: skip
    store = Store(pg_url, migrate=False)
    wait_for(lambda: "ok" in pull_runs(store), 30, "the redelivered pull to finish")
    wait_for(lambda: idle(client), 10, "the queue to drain")

    assert pull_runs(store) == ["running", "ok"]  # the killed run never finished
    enters = [e for e in events(client, "alpha") if e[0] == "enter"]
    (_, pid_1, start_1), (_, pid_2, start_2) = enters
    assert pid_1 != pid_2 and start_1 == "0"
    assert int(start_2) >= 3  # resumed after the pages the killed worker committed
    assert store.count("lead") == store.count("identity") == 40
    with store.engine.connect() as conn:
        emails = conn.execute(sa.text("SELECT count(DISTINCT email) FROM lead")).scalar()
    assert emails == 40
    store.close()


def test_a_killed_workers_lock_is_stale_at_once_and_taken_over_within_ten_seconds(
    tmp_path: Path, redis_url: str, pg_url: str, processes: Processes
) -> None:
    from core.jobs.broker import JobSettings
    from core.jobs.locks import RedisLock, lock_states

    client = redis.Redis.from_url(redis_url)
    defaults = JobSettings.model_fields
    ttl, heartbeat = defaults["lock_ttl"].default, defaults["heartbeat_timeout"].default
    assert ttl <= 10  # what the rest of this test relies on
    env = cluster_env(tmp_path, redis_url, pg_url, pages=40, per_page=2, delay=0.5)
    env |= {"LEADHUB_JOBS_LOCK_TTL": str(ttl), "LEADHUB_JOBS_HEARTBEAT_TIMEOUT": str(heartbeat)}
    worker = processes.leadhub("worker", "-p", "1", "-t", "1", "-m", "tests.jobs.ticker",
                               env=env, name="worker")  # fmt: skip
    wait_for(lambda: client.zcard("dramatiq:__heartbeats__") >= 1, 30, "the worker")
    send_pulls(redis_url, "alpha", 1)
    wait_for(lambda: int((client.get("ticker:alpha:at") or b"0").split()[0]) >= 2, 20, "page 2")
    time.sleep(ttl)  # long enough for the lease to have been renewed at least twice
    (live,) = lock_states(client, ttl)
    assert (live.name, live.stale) == ("pull:alpha", False)

    processes.kill(worker)  # SIGKILL: no release, no more renewals
    killed = time.monotonic()
    # `leadhub status` tells at once (the holder's pid is gone from this host), long before the
    # missed renewals would (ttl * 2/3).
    (dead,) = wait_for(lambda: [s for s in lock_states(client, ttl) if s.stale], ttl / 3,
                       "the lock to show stale")  # fmt: skip
    assert (dead.name, dead.holder) == ("pull:alpha", live.holder)
    taker = RedisLock(client, "pull:alpha", ttl)
    wait_for(taker.acquire, 10, "the killed worker's lock to be free", interval=0.1)
    assert time.monotonic() - killed <= ttl + 1
    taker.release()

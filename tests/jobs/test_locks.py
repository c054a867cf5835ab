"""Locks: one holder at a time, renewal keeps it, expiry frees it, only the holder releases it.

The same behaviour is pinned for the Redis lock (production) and the store lease (embedded), the
lease on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from core.jobs.locks import Lock, RedisLock, StoreLease, held
from core.store.store import Store

MakeLock = Callable[[str, float], Lock]


@pytest.fixture(params=["redis", "lease-sqlite", "lease-postgresql"])
def make_lock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeLock]:
    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        yield lambda name, ttl: RedisLock(client, name, ttl)
        return
    if request.param == "lease-sqlite":
        url = f"sqlite:///{tmp_path / 'leases.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = Store(url)
    yield lambda name, ttl: StoreLease(store, name, ttl)
    store.close()


def test_only_one_holder_at_a_time(make_lock: MakeLock) -> None:
    first, second = make_lock("pull:crm", 5), make_lock("pull:crm", 5)
    assert first.acquire()
    assert not second.acquire()
    assert first.holder() == first.token
    first.release()
    assert second.acquire()
    assert make_lock("pull:other", 5).acquire()  # names are independent


def test_an_expired_lock_is_free_and_its_old_holder_cannot_touch_it(make_lock: MakeLock) -> None:
    old, new = make_lock("scheduler", 0.2), make_lock("scheduler", 5)
    assert old.acquire()
    time.sleep(0.3)
    assert new.acquire()
    assert not old.renew()
    old.release()  # must not release the new holder's lock
    assert new.holder() == new.token
    assert new.renew()


def test_held_renews_while_the_work_runs_and_releases_after(make_lock: MakeLock) -> None:
    with held(make_lock("pull:slow", 0.3)) as lock:
        assert lock.acquired
        time.sleep(0.8)  # well past the ttl: only renewal keeps it
        assert not make_lock("pull:slow", 0.3).acquire()
        assert not lock.lost.is_set()
    assert make_lock("pull:slow", 0.3).acquire()


def test_held_reports_a_busy_lock_without_waiting(make_lock: MakeLock) -> None:
    assert make_lock("pull:busy", 5).acquire()
    started = time.monotonic()
    with held(make_lock("pull:busy", 5)) as lock:
        assert not lock.acquired
    assert time.monotonic() - started < 0.5

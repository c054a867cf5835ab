"""Shared fixtures: every store test runs on SQLite and, when configured, on PostgreSQL.

`LEADHUB_TEST_DATABASE_URL` (PostgreSQL) and `LEADHUB_TEST_REDIS_URL` enable the service tests;
without them those tests skip with a reason. `.ci/run` sets `LEADHUB_REQUIRE_SERVICES=1`, which
turns such a skip into a failure so CI can never pass without exercising PostgreSQL and Redis.
"""

from __future__ import annotations

import os

# Rich wraps at the terminal width; give CLI output room so assertions see whole lines.
os.environ.setdefault("COLUMNS", "200")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.store.db import create_engine
from core.store.store import Store

PG_URL = os.environ.get("LEADHUB_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("LEADHUB_TEST_REDIS_URL")
REQUIRED = os.environ.get("LEADHUB_REQUIRE_SERVICES") == "1"


def need_service(url: str | None, what: str, var: str) -> str:
    """Return the service URL, or skip (fail in CI) with a reason saying how to enable it."""
    if url:
        return url
    message = f"{what} tests need {var} (e.g. {var}=...); not set"
    if REQUIRED:
        pytest.fail(f"{message}, but LEADHUB_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


# Each pytest process works in a schema of its own, so concurrent runs on one server never collide.
PG_SCHEMA = f"lh_test_{os.getpid()}"


def schema_url(url: str, schema: str = PG_SCHEMA) -> str:
    """`url` with `schema` as its search path (created on reset)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def reset_postgres(url: str) -> str:
    """Empty this process's schema; returns the URL that uses it."""
    base = url.split("?options=")[0].split("&options=")[0]
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {PG_SCHEMA}"))
    engine.dispose()
    return schema_url(base)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadhub.db'}"
    url = need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")
    return reset_postgres(url)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def redis_url() -> str:
    url = need_service(REDIS_URL, "Redis", "LEADHUB_TEST_REDIS_URL")
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at {url} is not reachable: {exc}", pytrace=False)
    client.flushdb()
    return url


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schema() -> Iterator[None]:
    yield
    if PG_URL:
        engine = create_engine(PG_URL)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        except sa.exc.OperationalError:
            pass  # the server went away; nothing left to clean
        finally:
            engine.dispose()


@pytest.fixture(autouse=True)
def _restore_leadhub_env() -> Iterator[None]:
    """The CLI exports its global options as LEADHUB_* variables; undo that after each test."""
    before = {k: v for k, v in os.environ.items() if k.startswith("LEADHUB_")}
    yield
    for key in [k for k in os.environ if k.startswith("LEADHUB_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (`item.rep_call`), so a fixture's teardown can tell
    whether the test body ran at all (it did not when a service it needs is absent)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

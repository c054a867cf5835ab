"""Shared fixtures: every store test runs on SQLite and, when configured, on PostgreSQL.

`LEADHUB_TEST_DATABASE_URL` (PostgreSQL) and `LEADHUB_TEST_REDIS_URL` enable the service tests;
without them those tests skip with a reason. `.ci/run` sets `LEADHUB_REQUIRE_SERVICES=1`, which
turns such a skip into a failure so CI can never pass without exercising PostgreSQL and Redis.
"""

from __future__ import annotations

import os

# Rich wraps at the terminal width; give CLI output room so assertions see whole lines.
os.environ.setdefault("COLUMNS", "200")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from core.db import create_engine  # noqa: E402
from core.store import Store  # noqa: E402

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


def reset_postgres(url: str) -> None:
    """Drop every table so each test starts from an empty, freshly migrated schema."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadhub.db'}"
    url = need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")
    reset_postgres(url)
    return url


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

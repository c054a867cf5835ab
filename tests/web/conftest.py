"""Fixtures of the web tests: a seeded store, and clients of the app on it.

Requests go through the ASGI app in-process (`httpx.ASGITransport`), as in the webhook tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from core.settings import Settings
from core.store.store import Store
from core.web.app import create_app
from tests.conftest import PG_URL, need_service, reset_postgres
from tests.web import seed

TOKEN = "test-token-0123456789"
USER, PASSWORD = "ops", "correct horse battery staple"


class Client:
    """A synchronous client of an ASGI app; `headers` go with every request."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.app, self.headers = app, dict(headers or {})

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hub", headers=self.headers
            ) as client:
                return await client.request(method, path, **kwargs)

        return anyio.run(send)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)


def settings() -> Settings:
    return Settings(api_token=SecretStr(TOKEN), api_user=USER, api_password=SecretStr(PASSWORD))


@pytest.fixture
def seeded(store: Store) -> Store:
    seed.seed(store)
    return store


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """One seeded store per module and database, for modules whose tests only read."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'leadhub.db'}"
    else:
        url = reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL"))
    store = Store(url)
    seed.seed(store)
    yield store
    store.close()


@pytest.fixture
def client(seeded: Store, tmp_path: Path) -> Client:
    """A client without credentials of the app on the seeded store."""
    return Client(create_app(seeded, seed.hub(tmp_path), settings()))


@pytest.fixture
def authed(client: Client) -> Client:
    return Client(client.app, {"Authorization": f"Bearer {TOKEN}"})

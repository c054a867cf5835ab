"""Auth: 401 without credentials on the API and dashboard; token, basic auth; open routes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.errors import ConfigError
from core.settings import Settings
from core.store.store import Store
from core.web.app import ApiCredentials, create_app
from tests.web import seed
from tests.web.conftest import PASSWORD, TOKEN, USER, Client


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Auth does not depend on the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'leadhub.db'}"


@pytest.fixture(scope="module")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('auth') / 'leadhub.db'}")
    seed.seed(store)
    yield store
    store.close()


@pytest.fixture
def seeded(seeded_sqlite: Store) -> Store:
    """The requests here only read: one seeded store serves them all."""
    return seeded_sqlite


PROTECTED = ["/api/leads", "/api/leads/1", "/api/report", "/", "/leads/1"]


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.mark.parametrize("path", PROTECTED)
def test_401_without_credentials_with_a_basic_challenge(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="leadhub"')
    assert "LEADHUB_API_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        basic(USER, "wrong"),
        basic("someone-else", PASSWORD),
        {"Authorization": f"Token {TOKEN}"},
    ],
)
@pytest.mark.parametrize("path", ["/api/leads", "/"])
def test_401_with_wrong_credentials(client: Client, path: str, headers: dict[str, str]) -> None:
    assert client.get(path, headers=headers).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TOKEN}"}, basic(USER, PASSWORD), basic("anyone", TOKEN)],
    ids=["bearer", "basic", "basic-with-token"],
)
@pytest.mark.parametrize("path", ["/api/leads", "/api/report", "/"])
def test_200_with_token_or_basic_auth(client: Client, path: str, headers: dict[str, str]) -> None:
    assert client.get(path, headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/openapi.json"])
def test_open_routes_need_no_credentials(client: Client, path: str) -> None:
    assert client.get(path).status_code == 200


def test_healthz_and_metrics_bodies(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "leadhub_runs" in metrics.text


def test_refuses_to_start_without_credentials_unless_no_auth(store: Store, tmp_path: Path) -> None:
    hub = seed.hub(tmp_path)
    with pytest.raises(ConfigError, match="--no-auth"):
        create_app(store, hub, Settings())
    client = Client(create_app(store, hub, Settings(), no_auth=True))
    assert client.get("/api/leads").status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_user_without_password_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LEADHUB_API_PASSWORD"):
        ApiCredentials.from_settings(Settings(api_user="ops"))


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADHUB_API_TOKEN", "from-env")
    credentials = ApiCredentials.from_settings(Settings())
    assert credentials.accepts_token("from-env")
    assert not credentials.accepts_token("from-env ")
    assert "from-env" not in repr(Settings())


def test_empty_token_is_not_a_credential() -> None:
    assert not ApiCredentials.from_settings(Settings(api_token=SecretStr(""))).configured

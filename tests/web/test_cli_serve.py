"""`leadhub serve`: refuses to start without credentials unless --no-auth; runs uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from core.cli import app
from core.cli import serve as cli_serve  # noqa: F401  (registers `serve`)

runner = CliRunner()


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in ("LEADHUB_API_TOKEN", "LEADHUB_API_USER", "LEADHUB_API_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    return ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", db]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What uvicorn.run was called with (instead of serving)."""
    import uvicorn

    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda web, **kw: calls.update(app=web, **kw))
    return calls


def test_refuses_without_credentials_and_names_no_auth(base: list[str], served: dict) -> None:
    result = runner.invoke(app, [*base, "serve"])
    assert result.exit_code == 2
    assert "LEADHUB_API_TOKEN" in result.output and "--no-auth" in result.output
    assert served == {}


def test_serves_with_a_token(
    base: list[str], served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADHUB_API_TOKEN", "s3cret-token")
    result = runner.invoke(app, [*base, "serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    assert "http://127.0.0.1:8123/" in result.output


def test_no_auth_serves_with_a_warning(base: list[str], served: dict[str, Any]) -> None:
    result = runner.invoke(app, [*base, "serve", "--no-auth", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "0.0.0.0" and "--no-auth" in result.output


def test_lists_the_webhook_of_a_facebook_source(
    tmp_path: Path, served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADHUB_API_TOKEN", "s3cret-token")
    source = {
        "connector": "facebook_leads",
        "page_id": "138124712925158",
        "access_token": "EAAB-page-token",
        "app_secret": "app-secret",
        "verify_token": "verify-me",
    }
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(yaml.safe_dump({"sources": {"fb": source}}), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'leadhub.db'}"
    result = runner.invoke(app, ["-c", str(hub), "--database-url", db, "serve", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "webhook: http://127.0.0.1:8000/webhooks/facebook\n" in result.output
    assert "/webhooks/facebook" in served["app"].state.webhooks

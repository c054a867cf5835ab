"""`leadhub push` and `leadhub outbox` against a webhook destination (HTTP mocked with respx)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

import connectors.base.registry
from connectors.webhook import WebhookConnector
from core.store.store import Store
from tests.writeback.conftest import seed_leads, set_scores

URL = "https://hooks.example.com/services/T0/B0/abc123"
HUB = f"""
destinations:
  chat:
    connector: webhook
    url: {URL}
    secret: ${{HOOK_SECRET}}
    mode: upsert
    fields: {{total: score, tier: tier}}
"""


def flat(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture
def leadhub(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[CliRunner, list[str]]:
    from core.cli import app as cli  # noqa: F401  (registers the commands)
    from core.cli import push as cli_push  # noqa: F401  (registers the commands)

    monkeypatch.setattr(
        connectors.base.registry, "load_connectors", lambda: {"webhook": WebhookConnector}
    )
    monkeypatch.setenv("HOOK_SECRET", "hook-signing-secret")
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(HUB, encoding="utf-8")
    ids = seed_leads(store, 3, system=None)
    set_scores(store, ids, 42)
    return CliRunner(), ["--config", str(hub), "--database-url", store.url]


@respx.mock
def test_dry_run_then_push_then_nothing_left(leadhub: tuple[CliRunner, list[str]]) -> None:
    from core.cli import app

    runner, base = leadhub
    route = respx.post(URL).mock(return_value=httpx.Response(204))

    dry = runner.invoke(app, [*base, "push", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would send 3 record(s) in 1 API call(s)" in flat(dry.output)
    assert route.call_count == 0

    done = runner.invoke(app, [*base, "push", "chat", "--json"])
    assert done.exit_code == 0, done.output
    [row] = json.loads(done.stdout)
    assert (row["status"], row["accepted"], row["calls"]) == ("ok", 3, 1)
    assert route.call_count == 1

    left = runner.invoke(app, [*base, "outbox", "--json"])
    assert json.loads(left.stdout) == {"counts": {"chat": {"sent": 3}}, "records": []}


@respx.mock
def test_parked_records_are_listed_with_their_reason(leadhub: tuple[CliRunner, list[str]]) -> None:
    from core.cli import app

    runner, base = leadhub
    respx.post(URL).mock(return_value=httpx.Response(400, text="no such channel"))
    result = runner.invoke(app, [*base, "push"])
    assert result.exit_code == 0, result.output
    assert "3 record(s) parked" in flat(result.output)

    parked = runner.invoke(app, [*base, "outbox", "--parked", "--json"])
    records = json.loads(parked.stdout)["records"]
    assert [r["last_error"] for r in records] == ["HTTP 400: no such channel"] * 3

    status = runner.invoke(app, [*base, "status", "--json"])
    assert status.exit_code == 0, status.output
    [row] = [r for r in json.loads(status.stdout)["targets"] if r["kind"] == "destination"]
    assert (row["name"], row["parked"]) == ("chat", 3)


def test_an_unknown_destination_is_a_usage_error(leadhub: tuple[CliRunner, list[str]]) -> None:
    from core.cli import app

    runner, base = leadhub
    result = runner.invoke(app, [*base, "push", "nope"])
    assert result.exit_code == 2
    assert "no destination named 'nope' (configured: chat)" in flat(result.output)

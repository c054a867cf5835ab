"""Flaky vendors: with 429s, 500s, timeouts, dropped connections and truncated bodies injected
into every sandbox, a full cycle (pull → score → push, failed steps run again as the scheduler
would) ends with exactly the store and destination state of a clean run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sandbox.faults import KINDS, FaultInjector
from connectors.sandbox.server import serve
from core.store.store import Store
from tests.e2e.harness import (
    differences,
    fast_http,
    full_cycle,
    hub_config,
    installed_vendors,
    sandboxes,
    snapshot,
    write_hub,
)

pytestmark = pytest.mark.e2e
RATES = {"rate_limit": 0.06, "server_error": 0.06, "timeout": 0.02, "drop": 0.04,
         "truncate": 0.05}  # fmt: skip


# -- the injector itself -----------------------------------------------------------------------


def _echo() -> Starlette:
    return Starlette(routes=[Route("/items", lambda r: JSONResponse({"items": list(range(30))}))])


@pytest.mark.parametrize(
    ("kind", "seen"),
    [
        ("rate_limit", "429"),
        ("server_error", "500"),
        ("timeout", "ReadTimeout"),
        ("drop", "RemoteProtocolError"),
        ("truncate", "200 not JSON"),
    ],
)
def test_each_fault_reaches_the_client_as_the_network_would_deliver_it(
    kind: str, seen: str
) -> None:
    app = FaultInjector(_echo(), timeout_delay=0.6)
    app.configure(**{kind: 1.0})
    with serve(app) as url:
        try:
            answer = httpx.get(f"{url}/items", timeout=0.3)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            outcome = str(answer.status_code)
            if answer.is_success:
                try:
                    answer.json()
                except ValueError:
                    outcome += " not JSON"
        if kind == "rate_limit":
            assert answer.headers["Retry-After"] == "0"
    assert outcome == seen
    assert app.injected == {kind: 1}


def test_the_same_seed_gives_the_same_faults_and_rates_change_at_runtime() -> None:
    def kinds(seed: int) -> list[str | None]:
        app = FaultInjector(_echo(), seed=seed, rate_limit=0.3, server_error=0.3)
        return [app.draw() for _ in range(50)]

    assert kinds(3) == kinds(3) != kinds(4)
    app = FaultInjector(_echo())
    with serve(app) as url:
        assert httpx.get(f"{url}/items").status_code == 200
        changed = httpx.post(f"{url}/__faults", json={"server_error": 1, "seed": 9}).json()
        assert changed["rates"]["server_error"] == 1 and changed["seed"] == 9
        assert httpx.get(f"{url}/items").status_code == 500
        assert httpx.post(f"{url}/__faults", json={"bogus": 1}).status_code == 400
        assert httpx.post(f"{url}/__faults", json={"drop": 0.9}).status_code == 400  # sum > 1
        httpx.post(f"{url}/__faults", json={"server_error": 0, "script": ["rate_limit"]})
        assert [httpx.get(f"{url}/items").status_code for _ in range(2)] == [429, 200]
        app.off()
        assert httpx.get(f"{url}/items").status_code == 200
        assert httpx.get(f"{url}/__faults").json()["injected"] == {
            "server_error": 1,
            "rate_limit": 1,
        }


# -- full cycles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", installed_vendors())
def test_a_full_cycle_under_injected_faults_ends_as_a_clean_run_ends(
    vendor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_http(monkeypatch)
    with sandboxes([vendor]) as clean:
        hub = write_hub(tmp_path / "clean", hub_config(clean, [vendor]))
        store = Store(f"sqlite:///{tmp_path / 'clean.db'}")
        full_cycle(store, hub)
        expected, expected_dest = snapshot(store), clean.destination_state()
        store.close()
    assert expected["leads"] and expected["scores"] and expected_dest["crm"]
    if vendor == "mailchimp":
        assert any('"LSCORE"' in merge for _, merge, _ in expected_dest["mailchimp"].values())
    elif vendor != "facebook_leads":  # a source only; the CRMs are written back to as well
        assert any(any(v[1:]) for v in expected_dest[vendor].values())
    # Parked: what the vendor refuses for good (a Mailchimp lead without an email).
    assert "sent" in {row[2] for row in expected["outbox"]} <= {"sent", "parked"}

    with sandboxes([vendor], seed=2026) as flaky:
        flaky.faults.script(*KINDS)  # each kind at least once, whatever the draws give
        flaky.faults.configure(**RATES)
        hub = write_hub(tmp_path / "flaky", hub_config(flaky, [vendor]))
        store = Store(f"sqlite:///{tmp_path / 'flaky.db'}")
        report = full_cycle(store, hub, max_rounds=8)
        actual, actual_dest = snapshot(store), flaky.destination_state()
        store.close()
        injected = flaky.faults.injected

    assert set(injected) == set(KINDS), injected  # every kind of fault really happened
    assert differences(expected, actual) == {}
    assert differences(expected_dest, actual_dest) == {}
    assert report.rounds >= 1

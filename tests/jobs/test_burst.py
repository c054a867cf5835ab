"""A burst of webhook deliveries under `leadhub serve` with the jobs on Redis and PostgreSQL.

Each delivery appends its lead to the source's intake list and asks for an intake job; the
requests are coalesced, so the burst queues one intake job (not one per delivery), which stores
the leads in pages and asks for one score job, which asks for a push only of a destination with
something to send. In the end every lead is scored and pushed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.facebook_leads.sandbox import app as fb_sandbox
from connectors.facebook_leads.sandbox.world import PAGE_ID, deliver, leadgen_delivery
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.config import load_hub
from core.settings import Settings
from core.store.store import Store
from tests.jobs.conftest import QUEUES, ROOT, wait_for, write_hub
from tests.jobs.test_full_cycle import SECRET, Receiver

pytestmark = pytest.mark.e2e
DELIVERIES = 500


@pytest.fixture
def redis_jobs(redis_url: str) -> Iterator[None]:
    """The jobs of this process on Redis (no worker yet); the stub broker again afterwards."""
    from core.jobs import actors  # noqa: F401  (declares the actors)
    from core.jobs.broker import configure, reset_context

    configure(Settings(broker_url=redis_url))
    yield
    configure(Settings(broker_url=None))
    reset_context()


def hub_file(directory: Path, graph_url: str, hook_url: str) -> Path:
    shutil.copy(ROOT / "scoring" / "examples" / "default.yaml", directory / "models.yaml")
    source = {
        "connector": "facebook_leads",
        "base_url": graph_url,
        "page_id": PAGE_ID,
        "access_token": fb_sandbox.ACCESS_TOKEN,
        "app_secret": fb_sandbox.APP_SECRET,
        "verify_token": "burst-verify",
    }
    destination = {
        "connector": "webhook",
        "url": hook_url,
        "secret": SECRET,
        "mode": "upsert",
        "fields": {"total": "score", "tier": "tier"},
    }
    return write_hub(
        directory / "leadhub.yaml",
        {"fb": source},
        destinations={"chat": destination},
        scoring="models.yaml",
    )


def queued(client: redis.Redis, kind: str) -> int:
    return int(client.hlen(f"dramatiq:leadhub.{kind}.msgs"))


def metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_burst_of_deliveries_queues_a_handful_of_jobs_and_every_lead_is_pushed(
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
    redis_jobs: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.jobs import actors
    from core.web.app import create_app
    from tests.web.conftest import settings as web_settings

    client = redis.Redis.from_url(redis_url)
    receiver = Receiver()
    graph = fb_sandbox.create_app(World.build(seed=5, people=20))
    sandbox = graph.state.sandbox
    store = Store(pg_url)
    try:
        with serve(Starlette(routes=[Mount(fb_sandbox.MOUNT_PREFIX, app=graph)])) as graph_base:
            path = hub_file(tmp_path, graph_base + fb_sandbox.MOUNT_PREFIX, receiver.url)
            monkeypatch.setenv("LEADHUB_CONFIG", str(path))
            monkeypatch.setenv("LEADHUB_DATABASE_URL", pg_url)
            web = create_app(store, load_hub(path), web_settings())
            emails = [f"burst{i}@example{i % 7}.com" for i in range(DELIVERIES)]
            with serve(web) as served:
                for i, email in enumerate(emails):
                    lead = sandbox.submit(email=email, full_name=f"Burst Lead{i}",
                                          job_title="VP Marketing", country="US")  # fmt: skip
                    answer = deliver(
                        f"{served}/webhooks/facebook",
                        leadgen_delivery(sandbox.page_id, [lead]),
                        fb_sandbox.APP_SECRET,
                    )
                    assert answer.status_code == 200
                assert web.state.webhooks["/webhooks/facebook"].wait_idle(60)
            # No worker has run yet: 500 deliveries asked for an intake 500 times.
            assert store.count("lead") == 0
            assert client.llen("leadhub:intake:fb") == 2 * DELIVERIES  # a lead and its form
            assert [queued(client, k) for k in ("intake", "score", "push")] == [1, 0, 0]

            intakes = metric("leadhub_messages_total", actor="intake", outcome="ok")
            scores = metric("leadhub_messages_total", actor="score", outcome="ok")
            pushes = metric("leadhub_messages_total", actor="push", outcome="ok")
            worker = actors.start_worker(threads=2)
            try:
                wait_for(lambda: len(receiver.values) == DELIVERIES, 120, "every lead pushed")
                wait_for(lambda: not any(client.hlen(f"dramatiq:{q}.msgs") for q in QUEUES),
                         30, "the queues to drain")  # fmt: skip
            finally:
                worker.stop()
        assert store.count("lead") == DELIVERIES
        assert client.llen("leadhub:intake:fb") == 0
        # pages of 500 items: two intake pages, each asking for a score (coalesced)
        assert metric("leadhub_messages_total", actor="intake", outcome="ok") - intakes == 1
        assert metric("leadhub_messages_total", actor="score", outcome="ok") - scores <= 2
        assert metric("leadhub_messages_total", actor="push", outcome="ok") - pushes <= 2
        assert set(receiver.values) == set(emails)
        values: list[dict[str, Any]] = list(receiver.values.values())
        assert all(v["score"] is not None for v in values)
    finally:
        store.close()
        receiver.close()

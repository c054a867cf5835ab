"""Real-time latency: a signed Lead Ads webhook delivery → the lead scored on the sandbox CRM.

The Facebook Lead Ads receiver (`connectors.facebook_leads.webhook`) is served on its own
uvicorn server, wired as `leadhub serve` wires it in one process: store, score, push. The store
first holds the destination vendor's own records (a pull), so each push plans over a real store.
Each delivery is a new lead submitted on the Graph sandbox; the clock runs from the POST of its
signed delivery until the CRM sandbox holds the contact with its score. Deliveries are sent back
to back, each once the previous lead is visible: a burst of leads, one at a time, so a vendor's
rate budget shows as the few leads that wait for it (`over_1s`, `crm_calls_per_lead`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.sandboxes import SandboxHub, hub_config, missing, sandbox_hub
from connectors.base import SourceContext, open_source
from connectors.base.registry import open_destination
from connectors.facebook_leads import FacebookLeadsConnector
from connectors.sandbox.world import World
from core.errors import ConfigError
from core.pipeline import outbox
from core.pipeline import score as scorer
from core.pipeline.pull import pull_source
from core.pipeline.run import leads_handler
from core.store.store import Store

if TYPE_CHECKING:
    from connectors.base.contract import Destination
    from connectors.base.settings import DestinationSettings

SEED = 11
PEOPLE = 1000
SOURCE = "facebook"  # the Lead Ads block's name in the demo hub
VERIFY_TOKEN = "leadhub-bench"
DESTINATIONS = ("hubspot", "mailchimp")  # the first one installed is used
TIMEOUT = 30.0  # longer than a vendor rate budget's window: a lead waiting for it still counts
ROW_KEYS = ("destination", "deliveries", "scored", "p50_ms", "p95_ms", "max_ms", "over_1s",
            "target_p95_ms", "crm_calls_per_lead", "status")  # fmt: skip
Visible = Callable[[Any, str, str], bool]


def _mailchimp_has(app: Any, email: str, field: str) -> bool:
    from connectors.mailchimp.sandbox.data import subscriber_hash

    member = app.state.sandbox.audience.members.get(subscriber_hash(email))
    return member is not None and member.merge_fields.get(field) not in (None, "")


def _hubspot_has(app: Any, email: str, field: str) -> bool:
    # A scan, not `Portal.by_email`: its cached index is the server thread's to build.
    for contact in list(app.state.sandbox.portal.contacts.values()):
        if str(contact.properties.get("email") or "").lower() == email:
            return contact.properties.get(field) not in (None, "")
    return False


VISIBLE: dict[str, Visible] = {"hubspot": _hubspot_has, "mailchimp": _mailchimp_has}


def run(deliveries: int = 200) -> dict[str, Any]:
    """p50/p95 of `deliveries` webhook deliveries to the first installed CRM sandbox."""
    if reason := missing("facebook_leads"):
        return _row(None, status=f"facebook_leads: {reason}")
    notes = []
    for vendor in DESTINATIONS:
        if reason := missing(vendor):
            notes.append(f"{vendor}: {reason}")
            continue
        try:
            row = measure(vendor, deliveries)
        except Exception as exc:  # try the next destination, and say why this one was left
            notes.append(f"{vendor}: {type(exc).__name__}: {exc}")
            continue
        if notes:
            row["status"] = f"{row['status']} ({'; '.join(notes)})"
        return row
    return _row(None, status="; ".join(notes))


def measure(vendor: str, deliveries: int) -> dict[str, Any]:
    from connectors.facebook_leads.sandbox.app import APP_SECRET
    from connectors.facebook_leads.webhook import WEBHOOK_PATH
    from connectors.sandbox.server import serve

    world = World.build(seed=SEED, people=PEOPLE)
    vendors = ["facebook_leads", vendor]
    extra = {SOURCE: {"verify_token": VERIFY_TOKEN}}
    with (
        sandbox_hub(world, vendors) as hub,
        hub_config(hub.base, vendors, sources=extra) as (config, tmp),
    ):
        destinations = [(n, d) for n, d in config.destinations.items() if d.settings]
        if not destinations:
            raise ConfigError(f"{vendor}: no destination in its demo blocks")
        name, block = destinations[0]
        assert block.settings is not None
        # new leads are not in the CRM yet: the destination must be allowed to create them
        cfg = block.settings.model_copy(update={"mode": "upsert"})
        destination = open_destination(cfg, config.base_dir)
        store = Store(f"sqlite:///{tmp / 'webhook.db'}")
        try:
            _seed(store, config, vendor, cfg, destination)
            handle = leads_handler(store, config.models, [(cfg, destination)])
            fb = config.source(SOURCE)
            receiver = FacebookLeadsConnector().webhook(
                fb.settings, SourceContext(SOURCE, config.base_dir), handle
            )
            with serve(receiver.app()) as receiver_base:
                url = f"{receiver_base}{WEBHOOK_PATH}"
                field = cfg.fields.get("total") or next(iter(cfg.fields.values()))
                hub.counter.reset()
                latencies = _deliver_all(hub, vendor, url, APP_SECRET, field, deliveries)
                receiver.wait_idle(TIMEOUT)
                crm_calls = sum(
                    n for route, n in hub.counter.by_route.items() if f" /{vendor}/" in route
                )
        finally:
            store.close()
            close = getattr(destination, "close", None)
            if close:
                close()
    row = _figures(name, deliveries, latencies)
    row["crm_calls_per_lead"] = round(crm_calls / deliveries, 2)
    return row


def _seed(
    store: Store, config: Any, vendor: str, cfg: DestinationSettings, destination: Destination
) -> None:
    """The CRM's own records in the store, scored and pushed: a hub that has been running."""
    for name, block in config.sources.items():
        if block.connector != vendor:
            continue
        source = open_source(block.connector, block.settings, SourceContext(name, config.base_dir))
        pull_source(store, name, source)
    scorer.score(store, config.models, full=True)
    outbox.push(store, cfg, destination)


def _deliver_all(
    hub: SandboxHub, vendor: str, url: str, secret: str, field: str, deliveries: int
) -> list[float | None]:
    """Latency (seconds) of each delivery; None when the lead never showed up."""
    from connectors.facebook_leads.sandbox.world import deliver, leadgen_delivery

    graph, crm = hub.apps["facebook_leads"].state.sandbox, hub.apps[vendor]
    visible = VISIBLE[vendor]
    latencies: list[float | None] = []
    for i in range(deliveries):
        email = f"webhook.bench{i}@scoredco{i % 17}.com"
        lead = graph.submit(
            email=email, full_name=f"Bench Lead{i}", job_title="VP Marketing",
            company_name=f"Scored Co {i % 17}", country="US",
        )  # fmt: skip
        payload = leadgen_delivery(graph.page_id, [lead])
        started = time.perf_counter()
        answer = deliver(url, payload, secret)
        answer.raise_for_status()
        latencies.append(_until(visible, crm, email, field, started))
    return latencies


def _until(visible: Visible, app: Any, email: str, field: str, started: float) -> float | None:
    """Seconds from `started` until `email` holds `field` on the CRM; None after TIMEOUT."""
    while True:
        try:
            if visible(app, email, field):
                return time.perf_counter() - started
        except RuntimeError:  # a dict changed size under our read: the server thread writes
            pass
        if time.perf_counter() - started > TIMEOUT:
            return None
        time.sleep(0.001)


def _figures(name: str, deliveries: int, latencies: list[float | None]) -> dict[str, Any]:
    seen = sorted(x for x in latencies if x is not None)
    if not seen:
        return _row(name, deliveries=deliveries, scored=0, status="no lead reached the CRM")
    p95 = _percentile(seen, 95)
    status = "ok" if len(seen) == deliveries else f"{deliveries - len(seen)} timed out"
    return _row(
        name,
        deliveries=deliveries,
        scored=len(seen),
        p50_ms=round(1000 * statistics.median(seen), 1),
        p95_ms=round(1000 * p95, 1),
        max_ms=round(1000 * seen[-1], 1),
        over_1s=sum(1 for x in seen if x > 1),
        target_p95_ms=1000,
        status=status,
    )


def _percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def _row(destination: str | None, **values: Any) -> dict[str, Any]:
    return {key: values.get(key) for key in ROW_KEYS} | {"destination": destination}

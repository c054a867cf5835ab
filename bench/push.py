"""Push efficiency: API calls per 1,000 changed leads, and for leads that did not change.

For every installed sandbox with a destination in its demo blocks: pull the vendor's own records
(about `leads` of them, so the destination knows their ids) into a fresh store, score, and push
(`first`); then change the model so every lead's score moves, rescore and push (`changed`); then
push once more with nothing changed (`unchanged`, whose floor is 0). Calls are counted by the
sandbox (every request, reads included) and given per 1,000 leads sent; the floor is what the
vendor's largest write batch allows (HubSpot 100, Salesforce 200, Mailchimp 500 per call).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from bench.sandboxes import (
    MODEL_FILE,
    SandboxHub,
    hub_config,
    missing,
    per_thousand,
    routes_summary,
    sandbox_hub,
)
from connectors.base import SourceContext, open_destination, open_source
from connectors.sandbox.hub import VENDORS
from connectors.sandbox.world import World
from core.config import HubConfig
from core.pipeline import outbox
from core.pipeline import score as scorer
from core.pipeline.pull import pull_source
from core.store.store import Store
from scoring.model import ScoringModel, parse_models

SEED = 7
FLOORS = {"hubspot": 10, "salesforce": 5, "mailchimp": 2}  # calls per 1,000 changed leads
ROW_KEYS = ("vendor", "destination", "leads", "calls_first", "changed", "calls_changed",
            "per_1000_changed", "floor", "calls_unchanged", "routes_changed",
            "status")  # fmt: skip


def shifted_models(emails: list[str], points: int = 5) -> list[ScoringModel]:
    """The default models with one more fit rule, met by the leads with these `emails`."""
    raw = yaml.safe_load(MODEL_FILE.read_text(encoding="utf-8"))
    for model in raw["models"]:
        rule = {"name": "Benchmark shift", "field": "email", "in": emails, "points": points}
        model["fit"]["rules"].append(rule)
    return parse_models(raw, base_dir=MODEL_FILE.parent, source="benchmark shift")


def world_for(vendor: str, leads: int) -> World:
    """A world whose `vendor` sandbox holds about `leads` people."""
    probe = World.build(seed=SEED, people=1000)
    share = sum(1 for p in probe.people if getattr(p, f"in_{vendor}", True)) / 1000
    # a margin: some of the vendor's records are malformed or not leads
    return World.build(seed=SEED, people=math.ceil(1.5 * leads / max(share, 0.01)))


def run(leads: int = 1000) -> list[dict[str, Any]]:
    """One row per destination of every installed sandbox (or why it was not measured)."""
    rows: list[dict[str, Any]] = []
    for vendor in VENDORS:
        reason = missing(vendor)
        if reason:
            rows.append(_row(vendor, status=reason))
            continue
        try:
            rows.extend(push_vendor(vendor, leads))
        except Exception as exc:  # one vendor's failure is its row, not the section's end
            rows.append(_row(vendor, status=f"failed: {type(exc).__name__}: {exc}"))
    return rows


def push_vendor(vendor: str, leads: int) -> list[dict[str, Any]]:
    with (
        sandbox_hub(world_for(vendor, leads), [vendor]) as hub,
        hub_config(hub.base, [vendor]) as (config, tmp),
    ):
        if not config.destinations:
            return [_row(vendor, status="no destination (a source only)")]
        store = Store(f"sqlite:///{tmp / 'push.db'}")
        try:
            return _measure(vendor, hub, config, store, tmp, leads)
        finally:
            store.close()


def _measure(
    vendor: str, hub: SandboxHub, config: HubConfig, store: Store, base_dir: Path, leads: int
) -> list[dict[str, Any]]:
    for name, source_config in config.sources.items():
        source = open_source(
            source_config.connector, source_config.settings, SourceContext(name, base_dir)
        )
        pulled = pull_source(store, name, source)
        if pulled.error:
            return [_row(vendor, status=f"pull {name} failed: {pulled.error}")]
    scorer.score(store, config.models, full=True)
    targets = {}
    for name, block in config.destinations.items():
        assert block.settings is not None
        targets[name] = (block.settings, open_destination(block.settings, base_dir))
    phases: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in targets}
    try:
        for phase in ("first", "changed", "unchanged"):
            if phase == "changed":  # exactly `leads` leads get a new score
                sent = outbox.outbox_rows(store, next(iter(targets)), states=["sent"], limit=leads)
                emails = [r["email"] for r in sent if r["email"]]
                if not emails:
                    first = next(iter(phases.values()))["first"]
                    reason = first["error"] or "no lead was accepted"
                    return [_row(vendor, status=f"first push sent nothing: {reason}")]
                scorer.score(store, shifted_models(emails), full=True)
            for name, (cfg, destination) in targets.items():
                hub.counter.reset()
                result = outbox.push(store, cfg, destination)
                phases[name][phase] = {
                    "sent": result.attempted,
                    "calls": hub.counter.total,
                    "routes": routes_summary(hub.counter),
                    "error": result.error,
                }
    finally:
        for _, destination in targets.values():
            close = getattr(destination, "close", None)
            if close:
                close()
    rows = []
    for name, by_phase in phases.items():
        first, changed, unchanged = by_phase["first"], by_phase["changed"], by_phase["unchanged"]
        errors = [f"{p}: {v['error']}" for p, v in by_phase.items() if v["error"]]
        rows.append(
            _row(
                vendor,
                destination=name,
                leads=first["sent"],
                calls_first=first["calls"],
                changed=changed["sent"],
                calls_changed=changed["calls"],
                per_1000_changed=per_thousand(changed["calls"], changed["sent"]),
                floor=FLOORS.get(vendor),
                calls_unchanged=unchanged["calls"],
                routes_changed=changed["routes"],
                status="; ".join(errors) or "ok",
            )
        )
    return rows


def _row(vendor: str, **values: Any) -> dict[str, Any]:
    return {key: values.get(key) for key in ROW_KEYS} | {"vendor": vendor}

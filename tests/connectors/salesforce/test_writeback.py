"""Salesforce write-back behaviours, end to end against the sandbox: what happens to Leads that
sales deleted, merged or converted, and to leads that would be created from placeholders alone.

Each test pulls the org, pushes, changes the org as a Salesforce user would (`/__sandbox/touch`),
pulls again and pushes again; the oracle is the org's own records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.salesforce import SalesforceDestination
from core.pipeline.outbox import DestinationSettings, outbox_rows, push
from core.pipeline.pull import pull_source
from core.store.ingest import IDENTITY
from core.store.store import Store
from tests.connectors.salesforce.test_sandbox_e2e import (
    SMALL,
    Sandbox,
    conforming,
    lite,
    running,
    settings,
    source,
)
from tests.writeback.conftest import seed_leads, set_scores

__all__ = ["conforming", "lite"]  # fixtures; `conforming`: every request conforms
LEADS_ONLY = {"campaign_members": False, "tasks_and_events": False}


def upsert_destination(sandbox: Sandbox, tmp_path: Path) -> tuple[DestinationSettings, Any]:
    cfg = DestinationSettings.model_validate({
        "name": "salesforce_scores", "connector": "salesforce", "system": "salesforce",
        "mode": "upsert", "fields": {"total": "Lead_Score__c", "tier": "Lead_Tier__c"},
        "lead_fields": {"company": "Company", "last_name": "LastName"}})  # fmt: skip
    return cfg, SalesforceDestination(cfg.name, settings(sandbox, tmp_path), cfg,
                                      base_dir=tmp_path, sleep=lambda _: None)  # fmt: skip


def lead_of(store: Store, record_id: str) -> int:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(IDENTITY.c.lead_id).where(
                IDENTITY.c.system == "salesforce", IDENTITY.c.external_id == record_id
            )
        ).scalar()
    assert found is not None
    return int(found)


def pulled_and_pushed(store: Store, sandbox: Sandbox, tmp_path: Path) -> list[dict[str, Any]]:
    """Pull the org's Leads, score every one 71 and push (upsert); the org's open Leads."""
    assert pull_source(store, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY)).ok
    with store.engine.connect() as conn:
        leads = list(
            conn.execute(
                sa.select(IDENTITY.c.lead_id).where(
                    IDENTITY.c.system == "salesforce", IDENTITY.c.deleted.is_(False)
                )
            ).scalars()
        )
    set_scores(store, leads, 71.0)
    cfg, sf = upsert_destination(sandbox, tmp_path)
    assert push(store, cfg, sf).ok
    return [r for r in sandbox.org.records["Lead"].values()
            if not r["IsDeleted"] and not r["IsConverted"] and r["Email"]]  # fmt: skip


def test_a_lead_deleted_in_salesforce_is_parked_and_never_created_again(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL):
        doomed = pulled_and_pushed(lite, sandbox, tmp_path)[0]
        lead_id = lead_of(lite, doomed["Id"])
        sandbox.http.post("/touch", json={"object": "Lead", "id": doomed["Id"], "delete": True})
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY)).ok
        before = len(sandbox.org.records["Lead"])
        set_scores(lite, [lead_id], 55.0)
        cfg, sf = upsert_destination(sandbox, tmp_path)
        result = push(lite, cfg, sf)
        assert result.ok, result.error
        assert (result.attempted, result.parked, result.created) == (1, 1, 0)
        assert len(sandbox.org.records["Lead"]) == before  # nothing created
        assert not [r for r in sandbox.org.records["Lead"].values()
                    if r["LastName"] == "[not provided]"]  # fmt: skip
        [parked] = [r for r in outbox_rows(lite, "salesforce_scores", states=["parked"])
                    if r["lead_id"] == lead_id]  # (converted Leads are parked too)  # fmt: skip
        assert f"Lead {doomed['Id']} was deleted in Salesforce" in parked["last_error"]
        again = push(lite, cfg, sf, retry_parked=True)  # still deleted: parked again, not created
        assert again.created == 0 and lead_id in {i for i, _ in again.rejections}
        assert len(sandbox.org.records["Lead"]) == before


def test_a_lead_merged_away_is_written_to_the_surviving_lead(lite: Store, tmp_path: Path) -> None:
    for sandbox in running(SMALL):
        loser, survivor = pulled_and_pushed(lite, sandbox, tmp_path)[:2]
        assert loser["Email"] != survivor["Email"]
        lead_id = lead_of(lite, loser["Id"])
        # a rep merges the loser into the survivor: the loser goes to the recycle bin
        sandbox.http.post(
            "/touch",
            json={
                "object": "Lead",
                "id": loser["Id"],
                "delete": True,
                "values": {"MasterRecordId": survivor["Id"]},
            },
        )
        sandbox.http.post("/touch", json={"object": "Lead", "id": survivor["Id"]})
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY)).ok
        before = len(sandbox.org.records["Lead"])
        set_scores(lite, [lead_id], 93.0)
        cfg, sf = upsert_destination(sandbox, tmp_path)
        result = push(lite, cfg, sf)
        assert result.ok, result.error
        assert (result.accepted, result.parked) == (1, 0)
        records = sandbox.org.records["Lead"]
        assert (records[survivor["Id"]]["Lead_Score__c"], records[survivor["Id"]]["Lead_Tier__c"]
                ) == (93, "hot")  # fmt: skip
        assert records[loser["Id"]]["Lead_Score__c"] == 71  # the deleted one was not touched
        assert len(records) == before


def test_a_merge_of_a_merge_is_followed_to_the_end(lite: Store, tmp_path: Path) -> None:
    for sandbox in running(SMALL):
        first, middle, last = pulled_and_pushed(lite, sandbox, tmp_path)[:3]
        lead_id = lead_of(lite, first["Id"])
        for gone, into in ((first, middle), (middle, last)):
            sandbox.http.post(
                "/touch",
                json={
                    "object": "Lead",
                    "id": gone["Id"],
                    "delete": True,
                    "values": {"MasterRecordId": into["Id"]},
                },
            )
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY)).ok
        set_scores(lite, [lead_id], 12.0)
        cfg, sf = upsert_destination(sandbox, tmp_path)
        assert push(lite, cfg, sf).accepted == 1
        assert sandbox.org.records["Lead"][last["Id"]]["Lead_Score__c"] == 12


def test_a_lead_with_nothing_but_placeholders_is_not_created(lite: Store, tmp_path: Path) -> None:
    for sandbox in running(SMALL):
        [named] = seed_leads(lite, 1, system=None, start=700)
        [blank] = seed_leads(lite, 1, system=None, start=701)
        with lite.begin() as conn:  # a lead that knows nothing: no email, no name, no company
            conn.execute(
                sa.text(
                    "update lead set email = null, last_name = null, "
                    "company = null, first_name = null where id = :i"
                ),
                {"i": blank},
            )
        set_scores(lite, [named, blank], 64.0)
        before = len(sandbox.org.records["Lead"])
        cfg, sf = upsert_destination(sandbox, tmp_path)
        result = push(lite, cfg, sf)
        assert (result.accepted, result.created, result.parked) == (1, 1, 1)
        assert len(sandbox.org.records["Lead"]) == before + 1
        [parked] = outbox_rows(lite, "salesforce_scores", states=["parked"])
        assert parked["lead_id"] == blank and "only the placeholders" in parked["last_error"]

"""Calls a Salesforce sync does not waste, against the sandbox: Leads whose only change is
leadhub's own score write are not read again, and each Campaign is looked up once per sync.

The oracle is the sandbox's own log of the SOQL it answered and the rows it returned.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from core.pipeline.outbox import push
from core.pipeline.pull import pull_source
from core.store.ingest import IDENTITY
from core.store.store import Store
from tests.connectors.salesforce.test_sandbox_e2e import (
    SMALL,
    conforming,
    destination,
    lite,
    running,
    source,
)
from tests.writeback.conftest import set_scores

__all__ = ["conforming", "lite"]  # fixtures; `conforming`: every request conforms
LEADS_ONLY = {"campaign_members": False, "tasks_and_events": False}


def test_leads_only_changed_by_our_own_write_are_not_read_again(
    lite: Store, tmp_path: Path
) -> None:
    for sandbox in running(SMALL):
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY)).ok
        with lite.engine.connect() as conn:
            leads = list(
                conn.execute(
                    sa.select(IDENTITY.c.lead_id).where(
                        IDENTITY.c.system == "salesforce", IDENTITY.c.deleted.is_(False)
                    )
                ).scalars()
            )
        set_scores(lite, leads, 71.0)
        cfg, sf = destination(sandbox, tmp_path)
        pushed = push(lite, cfg, sf)
        assert pushed.ok and pushed.accepted > 100  # each of these moved its SystemModstamp

        again = pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY))
        assert again.ok and again.counts.read == 0  # nothing but our write changed them

        edited = next(r for r in sandbox.org.records["Lead"].values() if r["Lead_Score__c"] == 71)
        sandbox.http.post(
            "/touch", json={"object": "Lead", "id": edited["Id"], "values": {"Title": "VP Sales"}}
        )  # a rep's edit
        third = pull_source(lite, "salesforce", source(sandbox, tmp_path, **LEADS_ONLY))
        assert third.ok and (third.counts.read, third.counts.updated) == (1, 1)


def test_with_skip_own_writes_off_our_writes_are_read_again(lite: Store, tmp_path: Path) -> None:
    for sandbox in running(SMALL):
        block = {**LEADS_ONLY, "skip_own_writes": False}
        assert pull_source(lite, "salesforce", source(sandbox, tmp_path, **block)).ok
        with lite.engine.connect() as conn:
            leads = list(conn.execute(sa.select(IDENTITY.c.lead_id)).scalars())
        set_scores(lite, leads, 44.0)
        cfg, sf = destination(sandbox, tmp_path)
        pushed = push(lite, cfg, sf)
        again = pull_source(lite, "salesforce", source(sandbox, tmp_path, **block))
        assert again.ok and again.counts.read == pushed.accepted


def test_each_campaign_is_looked_up_once_per_sync(lite: Store, tmp_path: Path) -> None:
    for sandbox in running(SMALL, page_size=200):
        members = source(
            sandbox, tmp_path, objects=["Lead"], tasks_and_events=False, batch_size=200
        )
        assert pull_source(lite, "salesforce", members).ok
        state = sandbox.state()
        lookups = [q for q in state["queries"] if " FROM Campaign WHERE Id IN " in q]
        looked_up = [i for q in lookups for i in re.findall(r"'(701\w+)'", q)]
        used = {r["CampaignId"] for r in sandbox.org.records["CampaignMember"].values()}
        pages = len([q for q in state["queries"] if "FROM CampaignMember" in q])
        assert pages == 1 and len(state["page_sizes"]) > 3  # several pages of members
        assert sorted(looked_up) == sorted(used)  # every Campaign once, none twice

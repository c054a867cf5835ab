"""The sandboxes' clock: with it set, every vendor sandbox shows the world as it stood then.

Incremental reads through the real connectors over HTTP, cursors carried from one read to the
next as a pull carries them, with the clock moved forward between reads, as `leadhub demo --days`
does. The oracle is the synthetic world itself: when a person arrived and when their outcome
closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.base.contract import Item
from connectors.base.sandboxes import Sandboxes, serve_sandboxes
from core.config import HubConfig, load_hub
from core.pipeline.pull import open_source
from core.records import LeadRecord, OutcomeRecord

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 60
DAY = timedelta(days=1)
MEMBERSHIP = {"hubspot": "in_hubspot", "salesforce": "in_salesforce",
              "mailchimp": "in_mailchimp", "facebook": "in_facebook"}  # fmt: skip


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[Sandboxes]:
    with serve_sandboxes(seed=11, people=160, now=NOW, port=0, days=DAYS) as served:
        yield served


@pytest.fixture
def hub(sandboxes: Sandboxes, tmp_path: Path) -> Iterator[HubConfig]:
    sources, _ = sandboxes.hub_blocks()
    (tmp_path / "leadhub.yaml").write_text(yaml.safe_dump({"sources": sources}), "utf-8")
    yield load_hub(tmp_path / "leadhub.yaml")
    sandboxes.advance(None)


class Puller:
    """Reads every source from its cursors with the clock at `at`, keeping the cursors."""

    def __init__(self, hub: HubConfig, sandboxes: Sandboxes) -> None:
        self.hub, self.sandboxes = hub, sandboxes
        self.cursors: dict[tuple[str, str], Any] = {}

    def at(self, moment: datetime) -> dict[str, list[Item]]:
        self.sandboxes.advance(moment)
        found: dict[str, list[Item]] = {}
        for name in self.hub.sources:
            source = open_source(self.hub, name, moment.timestamp)
            for stream in source.streams():
                key = (name, stream.name)
                for page in stream.read(self.cursors.get(key)):
                    found.setdefault(name, []).extend(page.items)
                    if page.cursor is not None:
                        self.cursors[key] = page.cursor
        return found


def leads_of(found: dict[str, list[Item]], email: str) -> dict[str, list[LeadRecord]]:
    return {
        name: [i for i in items if isinstance(i, LeadRecord) and i.email == email]
        for name, items in found.items()
    }


def midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def test_a_person_appears_in_each_source_on_the_day_they_arrive(
    hub: HubConfig, sandboxes: Sandboxes
) -> None:
    world = sandboxes.world
    broken = set(world.malformed)
    person = next(
        p for p in world.people
        if p.key not in broken and p.in_hubspot and p.in_salesforce and p.in_mailchimp
        and p.in_facebook
        and NOW - 30 * DAY < p.created_at < NOW - 20 * DAY and p.created_at > midnight(p.created_at)
    )  # fmt: skip
    arrived = midnight(person.created_at)
    puller = Puller(hub, sandboxes)
    first = puller.at(arrived - 5 * DAY)  # a first pull, days before
    assert all(not found for found in leads_of(first, person.email).values())
    before = puller.at(arrived)  # the day before the arrival has ended
    assert all(not found for found in leads_of(before, person.email).values())
    after = leads_of(puller.at(arrived + DAY), person.email)
    expected = {name for name, flag in MEMBERSHIP.items() if getattr(person, flag)}
    assert {name for name, found in after.items() if found} == expected


def test_a_salesforce_lead_converts_on_its_conversion_day(
    hub: HubConfig, sandboxes: Sandboxes
) -> None:
    world = sandboxes.world
    broken = set(world.malformed)
    people = {p.key: p for p in world.people}
    result = next(
        r for r in world.outcomes
        if r.status == "converted" and people[r.person].in_salesforce and r.person not in broken
        and midnight(r.closed_at) > midnight(people[r.person].created_at) + DAY
    )  # fmt: skip
    person, converted_on = people[result.person], midnight(result.closed_at)
    puller = Puller(hub, sandboxes)
    arrival = puller.at(midnight(person.created_at) + DAY)["salesforce"]
    (lead,) = [i for i in arrival if isinstance(i, LeadRecord) and i.email == person.email]
    refs = {person.email, lead.external_id}

    def outcomes(found: dict[str, list[Item]]) -> list[OutcomeRecord]:
        return [i for i in found.get("salesforce", [])
                if isinstance(i, OutcomeRecord) and i.lead in refs]  # fmt: skip

    assert outcomes({"salesforce": arrival}) == []
    assert outcomes(puller.at(converted_on)) == []  # open until the day it converts
    found = outcomes(puller.at(converted_on + DAY))
    # read from the Lead and from its Opportunity, one outcome under one id
    assert {(o.external_id, o.status) for o in found} == {(found[0].external_id, "converted")}
    assert {o.closed_at.date() for o in found if o.closed_at} == {result.closed_at.date()}

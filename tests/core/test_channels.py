"""Channels: each source's vocabulary lands on the lead as one canonical name; the hub file's
`channels:` overrides the defaults; the identity keeps what the source said."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.hubspot.settings import DEFAULT_CHANNELS as HUBSPOT_CHANNELS
from core.channels import ALIASES, canonical_channel, use_overrides
from core.config import load_hub
from core.errors import ConfigError
from core.records import LeadRecord
from core.store.store import Store

# What each source emits as a lead's channel (connectors/*/mapping.py and settings.py), and the
# canonical name a person reading the value would give it.
SALESFORCE = {  # Lead.LeadSource: the standard picklist values of a Salesforce org
    "Web": "organic",
    "Advertisement": "paid_social",
    "Partner Referral": "referral",
    "Employee Referral": "referral",
    "External Referral": "referral",
    "Partner": "referral",
    "Purchased List": "purchased_list",
    "Trade Show": "event",
    "Seminar - Internal": "event",
    "Seminar - Partner": "event",
    "Phone Inquiry": "offline",
    "Word of mouth": "referral",
    "Other": "other",
}
HUBSPOT = {  # hs_analytics_source, as the connector lowercases it (its own `channels` setting)
    "ORGANIC_SEARCH": "organic",
    "PAID_SEARCH": "paid_search",
    "PAID_SOCIAL": "paid_social",
    "SOCIAL_MEDIA": "social",
    "EMAIL_MARKETING": "email",
    "REFERRALS": "referral",
    "AI_REFERRALS": "referral",
    "DIRECT_TRAFFIC": "direct",
    "OFFLINE": "offline",
    "OTHER_CAMPAIGNS": "campaign",
}
FACEBOOK = {"facebook_ads": "paid_social"}  # the connector's `channel` default
MAILCHIMP = {"email": "email"}  # the connector's `channel` default
CSV = {  # free text from a spreadsheet: case, spaces and hyphens vary
    "organic": "organic",
    "Organic Search": "organic",
    "paid-social": "paid_social",
    "Direct Traffic": "direct",
    "  Referral ": "referral",
    "Events": "event",
    "Olark Chat": "olark_chat",  # unknown: kept, in the lookup form
}


@pytest.fixture(autouse=True)
def _no_overrides() -> Iterator[None]:
    use_overrides({})
    yield
    use_overrides({})


@pytest.mark.parametrize(
    ("value", "canonical"),
    [*SALESFORCE.items(), *FACEBOOK.items(), *MAILCHIMP.items(), *CSV.items()],
)
def test_vendor_values_have_one_canonical_name(value: str, canonical: str) -> None:
    assert canonical_channel(value) == canonical


@pytest.mark.parametrize(("value", "canonical"), HUBSPOT.items())
def test_hubspot_values_through_its_connector_mapping(value: str, canonical: str) -> None:
    assert canonical_channel(HUBSPOT_CHANNELS[value]) == canonical


def test_canonical_names_are_their_own_name_and_blank_is_none() -> None:
    assert all(canonical_channel(name) == name for name in ALIASES)
    assert canonical_channel(None) is None and canonical_channel("  ") is None


def lead(source: str, ext: str, email: str, channel: str) -> LeadRecord:
    return LeadRecord(source=source, external_id=ext, email=email, channel=channel)


def channels(store: Store) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT email, channel FROM lead")).all())


def test_ingest_writes_the_canonical_name_and_the_identity_keeps_the_vendors(
    store: Store,
) -> None:
    store.save_page("sf", "leads", [lead("sf", "00Q1", "ann@x.com", "Purchased List")], None)
    store.save_page("fb", "leads", [lead("fb", "l1", "bob@x.com", "facebook_ads")], None)
    store.save_page("hs", "leads", [lead("hs", "7", "cy@x.com", "paid_social")], None)
    store.save_page("sf", "leads", [lead("sf", "00Q2", "di@x.com", "Advertisement")], None)
    assert channels(store) == {
        "ann@x.com": "purchased_list",
        "bob@x.com": "paid_social",
        "cy@x.com": "paid_social",
        "di@x.com": "paid_social",
    }
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT data FROM identity WHERE external_id = '00Q1'"))
        data = raw.scalar_one()
    assert (data if isinstance(data, dict) else json.loads(data))["channel"] == "Purchased List"


def hub_file(tmp_path: Path, channels_block: str) -> Path:
    path = tmp_path / "leadhub.yaml"
    path.write_text(f"channels:\n{channels_block}", encoding="utf-8")
    return path


def test_the_hub_files_channels_override_the_defaults(store: Store, tmp_path: Path) -> None:
    hub = load_hub(hub_file(tmp_path, '  "Partner Referral": partner\n  facebook_ads: facebook\n'))
    assert hub.channels == {"Partner Referral": "partner", "facebook_ads": "facebook"}
    store.save_page(
        "sf",
        "leads",
        [lead("sf", "1", "ann@x.com", "partner referral"), lead("sf", "2", "bo@x.com", "Web")],
        None,
    )
    store.save_page("fb", "leads", [lead("fb", "1", "cy@x.com", "facebook_ads")], None)
    assert channels(store) == {
        "ann@x.com": "partner",
        "bo@x.com": "organic",
        "cy@x.com": "facebook",
    }


def test_a_bad_channels_block_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"channels\.Web: must be a channel name"):
        load_hub(hub_file(tmp_path, "  Web: [organic]\n"))
    with pytest.raises(ConfigError, match=r"channels: must map"):
        load_hub(hub_file(tmp_path, "  - Web\n"))

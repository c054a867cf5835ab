"""The hub around the receiver in tests: a scoring model and a CRM that records what it gets."""

from __future__ import annotations

from connectors.facebook_leads.webhook import HandleLeads
from core.pipeline.outbox import DestinationSettings
from core.pipeline.run import leads_handler
from core.store.store import Store
from scoring.model import ScoringModel, parse_models
from tests.writeback.recording import RecordingDestination

MODELS: list[ScoringModel] = parse_models(
    {
        "models": [
            {
                "name": "default",
                "fit": {"rules": [{"name": "Has email", "field": "email", "exists": True,
                                   "points": 20}]},
                "engagement": {"rules": [{"name": "Lead form", "event": "ad_form_submitted",
                                          "points": 50}]},
                "tiers": [{"name": "hot", "min": 70}, {"name": "cold"}],
            }
        ]
    }
)  # fmt: skip
CRM = DestinationSettings(
    name="crm",
    connector="recording",
    fields={"total": "lead_score", "tier": "lead_tier"},
    lead_fields={"email": "email", "first_name": "firstname"},
    mode="upsert",
)


def wired(store: Store) -> tuple[HandleLeads, RecordingDestination]:
    """`handle_leads` storing, scoring and pushing into a recording CRM, and that CRM."""
    crm = RecordingDestination("crm")
    return leads_handler(store, MODELS, [(CRM, crm)]), crm

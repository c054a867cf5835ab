"""Hub-file blocks that point each connector at its sandbox: what `leadhub demo` configures.

Each entry gives the source and destination blocks of one vendor for a sandbox hub served at
`base` (e.g. `http://127.0.0.1:8765`); vendors whose connector is not installed are left out.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from connectors.facebook_leads.sandbox.app import ACCESS_TOKEN, APP_SECRET
from connectors.facebook_leads.sandbox.world import PAGE_ID
from connectors.mailchimp.sandbox.app import SANDBOX_API_KEY

Blocks = tuple[dict[str, Any], dict[str, Any]]
SCORE_FIELDS_MAILCHIMP = {"total": "LSCORE", "tier": "tags"}


def _facebook(base: str) -> Blocks:

    source = {
        "connector": "facebook_leads",
        "base_url": f"{base}/facebook_leads",
        "page_id": PAGE_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
    }
    return {"facebook": source}, {}


def _mailchimp(base: str) -> Blocks:

    common = {"connector": "mailchimp", "api_key": SANDBOX_API_KEY, "base_url": f"{base}/mailchimp"}
    source = {
        **common,
        "list_ids": ["a1b2c3d4e5"],
        "lookback_days": 3650,
        "ignore_merge_fields": ["LSCORE"],
    }
    destination = {
        **common,
        "list_id": "a1b2c3d4e5",
        "system": "mailchimp",
        "mode": "update",
        "model": "default",
        "fields": SCORE_FIELDS_MAILCHIMP,
    }
    return {"mailchimp": source}, {"mailchimp_scores": destination}


def _from_sandbox(vendor: str) -> Callable[[str], Blocks]:
    """Blocks from the connector's own `sandbox.demo_blocks(base_url)`."""

    def blocks(base: str) -> Blocks:
        module = importlib.import_module(f"connectors.{vendor}.sandbox")
        result: Blocks = module.demo_blocks(f"{base}/{vendor}")
        return result

    return blocks


VENDOR_BLOCKS: dict[str, Callable[[str], Blocks]] = {
    "facebook_leads": _facebook,
    "mailchimp": _mailchimp,
    "hubspot": _from_sandbox("hubspot"),
    "salesforce": _from_sandbox("salesforce"),
}


def hub_blocks(base: str, installed: list[str]) -> Blocks:
    """Sources and destinations for every installed sandbox."""
    sources: dict[str, Any] = {}
    destinations: dict[str, Any] = {}
    for vendor in installed:
        try:
            src, dst = VENDOR_BLOCKS[vendor](base)
        except (ImportError, AttributeError):
            continue  # the connector has no demo blocks yet
        sources.update(src)
        destinations.update(dst)
    return sources, destinations


def landed(vendor: str, app: Any, email: str) -> str:
    """What `vendor`'s sandbox (`app`) now holds for `email` in the fields leadhub writes, as
    `field=value, …`; "" when the sandbox has no such record or leadhub writes nothing there."""
    sandbox = app.state.sandbox
    email = email.lower()
    if vendor == "hubspot":
        contact = sandbox.portal.by_email(email)
        props = contact.properties if contact else {}
        return ", ".join(f"{k}={v}" for k, v in sorted(props.items()) if k.startswith("leadhub"))
    if vendor == "salesforce":
        for record in sandbox.org.records.get("Lead", {}).values():
            if (record.get("Email") or "").lower() == email:
                if record.get("IsConverted"):
                    return "converted lead: Salesforce refuses updates, so it is parked"
                return ", ".join(
                    f"{k}={v}"
                    for k, v in record.items()
                    if k.startswith("Lead_") and k.endswith("__c") and v not in (None, "")
                )
        return ""
    if vendor == "mailchimp":
        member = next(
            (m for m in sandbox.audience.members.values() if m.email.lower() == email), None
        )
        if member is None:
            return ""
        score = member.merge_fields.get("LSCORE")
        tags = ",".join(sorted(member.tags))
        return f"LSCORE={score}" + (f", tags={tags}" if tags else "")
    return ""


FOLLOW_UP = "Follow up: {name} qualified (score {total:.0f})"


def with_follow_ups(destinations: dict[str, Any]) -> dict[str, Any]:
    """The destination blocks with `on_qualified` on each CRM's: a follow-up task per crossing."""
    out = {}
    for name, block in destinations.items():
        if block.get("connector") in ("hubspot", "salesforce"):
            block = {**block, "on_qualified": {"subject": FOLLOW_UP, "due_in_days": 1}}
        out[name] = block
    return out


def tasks(vendor: str, app: Any, email: str) -> list[str]:
    """The subjects of the follow-up tasks leadhub created on `email`'s record in `vendor`'s
    sandbox CRM (the seeded reps' calls and emails left out)."""
    sandbox = app.state.sandbox
    email = email.lower()
    if vendor == "hubspot":
        contact = sandbox.portal.by_email(email)
        if contact is None:
            return []
        return [
            str(t["properties"].get("hs_task_subject"))
            for t in sandbox.portal.tasks.values()
            if contact.id in t["contacts"]
        ]
    if vendor == "salesforce":
        ids = {
            r["Id"]
            for r in sandbox.org.records.get("Lead", {}).values()
            if (r.get("Email") or "").lower() == email
        }
        return [
            str(t.get("Subject"))
            for t in sandbox.org.records.get("Task", {}).values()
            if t.get("WhoId") in ids and str(t.get("Subject") or "").startswith("Follow up")
        ]
    return []

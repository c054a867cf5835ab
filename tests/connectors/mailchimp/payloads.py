"""Mailchimp payloads in the documented shapes of shared/api/mailchimp.md (§2, §3, §4, §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

API_KEY = "0123456789abcdef0123456789abcdef-us6"
ROOT = "https://us6.api.mailchimp.com/3.0"
LIST = "abc123"
CAMPAIGN = "42694e9e57"
ADA_ID = "62eeb292278cc15f5817cb78f7790b08"


def member(**overrides: Any) -> dict[str, Any]:
    """One member of `GET /lists/{id}/members` (SDK `list_members.py`)."""
    base: dict[str, Any] = {
        "id": ADA_ID, "email_address": "ada@example.com", "unique_email_id": "aaa",
        "contact_id": "ccc", "full_name": "Ada Lovelace", "web_id": 123, "email_type": "html",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace", "LSCORE": 42},
        "interests": {}, "stats": {"avg_open_rate": 0.8, "avg_click_rate": 0.6,
                                   "ecommerce_data": {}},
        "ip_signup": "", "timestamp_signup": "", "ip_opt": "1.2.3.4",
        "timestamp_opt": "2020-12-31T06:55:17+00:00", "member_rating": 4,
        "last_changed": "2020-12-31T06:55:17+00:00", "language": "", "vip": False,
        "email_client": "",
        "location": {"latitude": 2.18, "longitude": 99.47, "gmtoff": 8, "dstoff": 8,
                     "country_code": "MY", "timezone": "asia/kuala_lumpur", "region": "10"},
        "source": "Admin Add", "tags_count": 1, "tags": [{"id": 10297, "name": "Influencer"}],
        "list_id": LIST, "unsubscribe_reason": "", "last_note": {},
    }  # fmt: skip
    return {**base, **overrides}


def members_page(members: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    total = len(members) if total is None else total
    return {"members": members, "list_id": LIST, "total_items": total}


def campaign(cid: str = CAMPAIGN, send_time: str = "2026-05-01T09:00:00+00:00") -> dict[str, Any]:
    return {"id": cid, "type": "regular", "status": "sent", "send_time": send_time,
            "recipients": {"list_id": LIST}, "settings": {"title": f"news {cid}",
                                                          "subject_line": "News"}}  # fmt: skip


def campaigns_page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"campaigns": list(items), "total_items": len(items)}


def activity_row(*events: dict[str, Any], cid: str = CAMPAIGN, email: str = "ada@example.com",
                 email_id: str = ADA_ID) -> dict[str, Any]:  # fmt: skip
    """One recipient of `GET /reports/{id}/email-activity` (SPEC-F `ReportsEmailActivityEmails`)."""
    return {"campaign_id": cid, "list_id": LIST, "list_is_active": True, "email_id": email_id,
            "email_address": email, "activity": list(events)}  # fmt: skip


def activity_page(*rows: dict[str, Any], cid: str = CAMPAIGN) -> dict[str, Any]:
    return {"emails": list(rows), "campaign_id": cid, "total_items": len(rows)}


OPEN = {"action": "open", "timestamp": "2026-05-02T10:01:00+00:00", "ip": "1.2.3.4"}
CLICK = {"action": "click", "timestamp": "2026-05-02T10:02:00+00:00",
         "url": "https://x.test/pricing", "ip": "1.2.3.4"}  # fmt: skip
BOUNCE = {"action": "bounce", "type": "hard", "timestamp": "2026-05-02T09:05:00+00:00"}


def unsubscribes_page(*rows: dict[str, Any], cid: str = CAMPAIGN) -> dict[str, Any]:
    return {"unsubscribes": list(rows), "campaign_id": cid, "total_items": len(rows)}


def unsubscribe(timestamp: str, email: str = "ada@example.com") -> dict[str, Any]:
    """An item of `GET /reports/{id}/unsubscribed` (SDK `unsubscribes.py`)."""
    return {"email_id": ADA_ID, "email_address": email, "merge_fields": {}, "vip": False,
            "timestamp": timestamp, "reason": "Too many emails", "campaign_id": CAMPAIGN,
            "list_id": LIST, "list_is_active": True}  # fmt: skip


def problem(
    status: int, title: str, detail: str, errors: list[Any] | None = None
) -> dict[str, Any]:
    """An `application/problem+json` error body (§6)."""
    body: dict[str, Any] = {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                            "title": title, "status": status, "detail": detail,
                            "instance": "995c5cb0-3280-4a6e-808b-3b096d0bb219"}  # fmt: skip
    if errors:
        body["errors"] = errors
    return body


PROBLEM = {"Content-Type": "application/problem+json"}


def segment(segment_id: int, name: str, member_count: int = 0) -> dict[str, Any]:
    """A tag as `GET /lists/{id}/segments?type=static` lists it: a static segment."""
    return {"id": segment_id, "name": name, "member_count": member_count, "type": "static",
            "created_at": "2026-01-05T10:00:00+00:00", "updated_at": "2026-01-05T10:00:00+00:00",
            "options": {"match": "any", "conditions": []}, "list_id": LIST}  # fmt: skip


def segments_page(*segments: dict[str, Any]) -> dict[str, Any]:
    return {"segments": list(segments), "list_id": LIST, "total_items": len(segments)}


def segment_answer(
    added: Sequence[str] = (), removed: Sequence[str] = (), errors: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The answer of `POST /lists/{id}/segments/{segment_id}` (batch add/remove members):
    `members_added`/`members_removed` are member objects, `errors` name `email_addresses`."""
    return {"members_added": [member(email_address=e, id=e) for e in added],
            "members_removed": [member(email_address=e, id=e) for e in removed],
            "errors": list(errors), "total_added": len(added), "total_removed": len(removed),
            "error_count": sum(len(e.get("email_addresses", [])) for e in errors)}  # fmt: skip

"""Graph payloads as `shared/api/facebook_leads.md` documents them (ids filled in), and builders.

Documented shapes: the `/leads` page and the single-lead read of the retrieving guide, the
`custom_disclaimer_responses` example, the error body of the error-handling guide, the usage
headers of the rate-limiting page, and both webhook payloads (the docs' numbers, Meta's test
payload's strings).
"""

from __future__ import annotations

import json
from typing import Any

from connectors.facebook_leads import FacebookLeadsSettings

GRAPH = "https://graph.facebook.com/v25.0"
PAGE_ID = "138124712925158"
FORM_ID = "172036835026334"
TOKEN = "EAAB-page-token-for-tests"
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "meatyhamhock"

# GET /{form-id}/leads ([doc] retrieving page)
LEADS_PAGE: dict[str, Any] = {
    "data": [
        {
            "created_time": "2018-02-28T08:49:14+0000",
            "id": "976777789012345",
            "ad_id": "6071234567890",
            "form_id": FORM_ID,
            "field_data": [
                {"name": "car_make", "values": ["Honda"]},
                {"name": "full_name", "values": ["Joe Example"]},
                {"name": "email", "values": ["joe@example.com"]},
            ],
        }
    ],
    "paging": {"cursors": {"before": "OTc2Nz3M8MTgyMzU1NDMy", "after": "OTcxNjcyOTg8ANTI4NzE4"}},
}

# GET /{leadgen-id} ([doc] retrieving page, "Webhook Response")
SINGLE_LEAD: dict[str, Any] = {
    "created_time": "2015-02-28T08:49:14+0000",
    "id": "233370042045345",
    "ad_id": "6071234567890",
    "form_id": FORM_ID,
    "field_data": [
        {"name": "full_name", "values": ["Joe Example"]},
        {"name": "email", "values": ["joe@example.com"]},
        {"name": "selected_dealer", "values": ["99213450"]},
    ],
}

# custom_disclaimer_responses ([doc] retrieving page)
DISCLAIMERS: dict[str, Any] = {
    "custom_disclaimer_responses": [
        {"checkbox_key": "optional_1", "is_checked": "1"},
        {"checkbox_key": "optional_2", "is_checked": ""},
    ],
    "id": "1231231231",
}

# GET /{page-id}/leadgen_forms (illustrative shape built from the SDK field list)
FORMS_PAGE: dict[str, Any] = {
    "data": [
        {"id": FORM_ID, "name": "My Form", "status": "ACTIVE", "locale": "en_US",
         "created_time": "2017-01-01T00:00:00+0000", "leads_count": 37,
         "questions": [{"key": "email", "label": "Email", "type": "EMAIL", "id": "1"}]},
        {"id": "172036835026999", "name": "Old form", "status": "DELETED", "locale": "en_US"},
    ],
    "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}},
}  # fmt: skip

# Webhook deliveries ([doc] webhooks getting-started; [sdk] fbsamples Postman test payload)
DOC_DELIVERY: dict[str, Any] = {
    "object": "page",
    "entry": [{"id": "153125381133", "time": 1438292065, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": 123123123123, "page_id": 123123123,
                                       "form_id": 12312312312, "adgroup_id": 12312312312,
                                       "ad_id": 12312312312, "created_time": 1440120384}}]}],
}  # fmt: skip
TEST_DELIVERY: dict[str, Any] = {
    "object": "page",
    "entry": [{"id": PAGE_ID, "time": 1630087930, "changes": [
        {"field": "leadgen", "value": {"form_id": FORM_ID, "leadgen_id": "233370042045345",
                                       "created_time": 1630087926, "page_id": PAGE_ID}}]}],
}  # fmt: skip


def graph_error(code: int, subcode: int | None = None, **extra: Any) -> dict[str, Any]:
    """The documented error body with `code` (and `error_subcode`)."""
    body: dict[str, Any] = {
        "message": "Message describing the error", "type": "OAuthException", "code": code,
        "error_user_title": "A title", "error_user_msg": "A message", "fbtrace_id": "EJplcsCHuLu",
        **extra,
    }  # fmt: skip
    if subcode is not None:
        body["error_subcode"] = subcode
    return {"error": body}


def buc_usage(call_count: int, regain_minutes: int = 0) -> dict[str, str]:
    """An X-Business-Use-Case-Usage header (documented keys) for the Page."""
    entry = {"type": "leadgen", "call_count": call_count, "total_cputime": 20, "total_time": 20,
             "estimated_time_to_regain_access": regain_minutes}  # fmt: skip
    return {"X-Business-Use-Case-Usage": json.dumps({PAGE_ID: [entry]})}


def settings(**overrides: Any) -> FacebookLeadsSettings:
    base: dict[str, Any] = {"page_id": PAGE_ID, "access_token": TOKEN}
    return FacebookLeadsSettings.model_validate({**base, **overrides})

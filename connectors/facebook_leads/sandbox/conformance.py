"""The Graph operations of Lead Ads, as Meta's `facebook-business` SDK 26.0.3 declares them.

The SDK's generated classes give each operation: `Page.get_lead_gen_forms` (GET
`/{page-id}/leadgen_forms`), `LeadgenForm.get_leads` (GET `/{form-id}/leads`) and the node reads
`Lead.api_get` / `LeadgenForm.api_get` / `Page.api_get` (GET `/{id}`). Their own `param_types` are
empty: what a caller may send are Graph's common parameters (`fields`, and on edges the cursor
paging `limit`/`after`/`before` plus `summary`, which the SDK's `Cursor` always adds), the token
(`access_token`, or a Bearer header) with `appsecret_proof`, and on leads the documented
`filtering` on `time_created`. The readable fields are the SDK's `Lead.Field`, `LeadgenForm.Field`
and `LeadGenQuestion.Field` lists; Graph refuses any other with `(#100) Tried accessing
nonexisting field`, which `unknown_fields` finds for the sandbox.

tests/contract/test_facebook_leads.py holds these tables against the installed SDK.
"""

from __future__ import annotations

from connectors.sandbox.conformance import Operation, Param

SOURCE = "facebook-business 26.0.3 (facebook_business.adobjects: Page, LeadgenForm, Lead)"

# Lead.Field, LeadgenForm.Field and LeadGenQuestion.Field of facebook-business 26.0.3.
LEAD_FIELDS = frozenset(
    {
        "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
        "created_time", "custom_disclaimer_responses", "field_data", "form_id", "home_listing",
        "id", "is_organic", "partner_name", "platform", "post", "post_submission_check_result",
        "retailer_item_id", "vehicle",
    }
)  # fmt: skip
FORM_FIELDS = frozenset(
    {
        "allow_organic_lead", "block_display_for_non_targeted_viewer", "context_card",
        "created_time", "creator", "expired_leads_count", "follow_up_action_text",
        "follow_up_action_url", "id", "is_optimized_for_quality", "leads_count", "legal_content",
        "locale", "name", "organic_leads_count", "page", "page_id", "privacy_policy_url",
        "question_page_custom_headline", "questions", "status", "thank_you_page",
        "tracking_parameters",
    }
)  # fmt: skip
QUESTION_FIELDS = frozenset(
    {
        "conditional_questions_choices", "conditional_questions_group_id",
        "dependent_conditional_questions", "id", "inline_context", "key", "label", "options",
        "type",
    }
)  # fmt: skip
FORM_STATUSES = ("ACTIVE", "ARCHIVED", "DELETED", "DRAFT")  # LeadgenForm.Status
# Graph's documented `filtering` operators for leads (the retrieving guide).
FILTER_OPERATORS = ("LESS_THAN", "GREATER_THAN", "GREATER_THAN_OR_EQUAL")

_AUTH = (Param("access_token"), Param("appsecret_proof"))
_FIELDS = Param("fields")
_PAGING = (
    Param("limit", "integer", minimum=1),
    Param("after"),
    Param("before"),
    Param("summary", "boolean"),
)

OPERATIONS = (
    Operation(
        "Page.get_lead_gen_forms",
        "GET",
        "/{version}/{page_id}/leadgen_forms",
        query=(*_AUTH, _FIELDS, *_PAGING),
        source=SOURCE,
    ),
    Operation(
        "LeadgenForm.get_leads",
        "GET",
        "/{version}/{form_id}/leads",
        query=(*_AUTH, _FIELDS, *_PAGING, Param("filtering")),
        source=SOURCE,
    ),
    Operation(
        "Lead.api_get / LeadgenForm.api_get / Page.api_get",
        "GET",
        "/{version}/{node_id}",
        query=(*_AUTH, _FIELDS),
        source=SOURCE,
    ),
)


def field_names(fields: str) -> list[tuple[str, str]]:
    """The top-level names of a `fields` value, each with its raw subfield list:
    `id,questions{key,options{value}}` → `[("id", ""), ("questions", "key,options{value}")]`."""
    found: list[tuple[str, str]] = []
    depth, name, sub = 0, "", ""
    for ch in fields + ",":
        if ch == "," and depth == 0:
            if name.strip():
                found.append((name.strip(), sub))
            name, sub = "", ""
            continue
        if ch == "}":
            depth -= 1
        if depth:
            sub += ch
        elif ch != "{" and ch != "}":
            name += ch
        if ch == "{":
            depth += 1
    return found


def unknown_fields(fields: str, known: frozenset[str]) -> list[str]:
    """The names in `fields` that the node type does not have (`questions{…}` checked too)."""
    unknown = []
    for name, sub in field_names(fields):
        if name not in known:
            unknown.append(name)
        elif name == "questions":
            names = [n for n, _ in field_names(sub)]
            unknown += [f"questions.{n}" for n in names if n not in QUESTION_FIELDS]
    return unknown

"""Mailchimp's schema facts for the operations the connector (and a neighbouring tool) uses.

Query names are the `all_params` of the official client's generated methods (`mailchimp-marketing`
3.0.80, `mailchimp_marketing/api/*_api.py`); enums, limits, required body keys and value types
are the published Marketing API schema (`mailchimp/fern-marketing-api-docs`,
`fern/apis/mailchimp-openapi/openapi.json`, commit 03215668). The sandbox refuses a request that
breaks them with Mailchimp's 400 problem+json, as the API would.

The fact that matters most for write-back: every member of a batch subscribe/update (`POST
/3.0/lists/{list_id}`, "Add List Members") must carry `status` or `status_if_new` (`anyOf` of two
`required` lists), whether or not `update_existing` is set.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.conformance import Operation, Param

CLIENT = "mailchimp-marketing 3.0.80"
SCHEMA = "fern-marketing-api-docs openapi.json @03215668"
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MEMBER_STATUSES = (*STATUSES, "archived")  # a member's status as read (and the `status` filter)
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio",
               "dropdown", "birthday", "zip")  # fmt: skip

# `fields` / `exclude_fields` are csv lists (one query value); count is capped at 1000.
_TRIM = (Param("fields"), Param("exclude_fields"))
_PAGE = (Param("count", "integer", minimum=1, maximum=1000), Param("offset", "integer", minimum=0))
_SORT_DIR = Param("sort_dir", enum=("ASC", "DESC"))


def _source(method: str) -> str:
    return f"{CLIENT} {method}; {SCHEMA}"


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


# "Add List Members" (the items of the batch body), `anyOf` status / status_if_new.
BATCH_MEMBER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "email_address": _nullable("string"),
        "email_type": _nullable("string"),
        "status": {"enum": [*STATUSES, None]},
        "status_if_new": {"enum": [*STATUSES, None]},
        "merge_fields": {
            "type": ["object", "null"],
            "additionalProperties": {"type": ["object", "string", "number", "boolean"]},
        },
        "interests": {"type": ["object", "null"],
                      "additionalProperties": {"type": ["boolean", "null"]}},
        "language": _nullable("string"),
        "vip": _nullable("boolean"),
        "location": _nullable("object"),
        "ip_signup": _nullable("string"),
        "ip_opt": _nullable("string"),
        "timestamp_signup": _nullable("string"),
        "timestamp_opt": _nullable("string"),
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "anyOf": [{"required": ["status"]}, {"required": ["status_if_new"]}],
}  # fmt: skip

BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["members"],
    "properties": {
        # "Up to 500 members may be added or updated with each API call."
        "members": {"type": "array", "maxItems": 500, "items": BATCH_MEMBER},
        "update_existing": _nullable("boolean"),
        "sync_tags": _nullable("boolean"),
    },
}

MERGE_FIELD_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string"},
        "type": {"enum": list(MERGE_TYPES)},
        "tag": {"type": "string"},
        "required": {"type": "boolean"},
        "public": {"type": "boolean"},
        "default_value": {"type": "string"},
        "display_order": {"type": "integer"},
        "help_text": {"type": "string"},
        "options": {"type": "object"},
    },
}

SEGMENT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "static_segment": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "object"},
    },
}

SEGMENT_BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {  # "a maximum of 500" emails in each list
        "members_to_add": {"type": "array", "maxItems": 500, "items": {"type": "string"}},
        "members_to_remove": {"type": "array", "maxItems": 500, "items": {"type": "string"}},
    },
}

MEMBER_TAGS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["tags"],
    "properties": {
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status"],
                "properties": {"name": {"type": "string"},
                               "status": {"enum": ["active", "inactive"]}},
            },
        },
        "is_syncing": {"type": "boolean"},
    },
}  # fmt: skip

OPERATIONS: tuple[Operation, ...] = (
    Operation("getRoot", "GET", "/3.0/", _TRIM, source=_source("RootApi.get_root")),
    Operation("getPing", "GET", "/3.0/ping", source=_source("PingApi.get")),
    Operation(
        "getListsIdMembers", "GET", "/3.0/lists/{list_id}/members",
        (*_TRIM, *_PAGE, Param("email_type"), Param("status", enum=MEMBER_STATUSES),
         Param("since_timestamp_opt"), Param("before_timestamp_opt"),
         Param("since_last_changed"), Param("before_last_changed"), Param("unique_email_id"),
         Param("vip_only", "boolean"), Param("interest_category_id"), Param("interest_ids"),
         Param("interest_match", enum=("any", "all", "none")),
         Param("sort_field", enum=("timestamp_opt", "timestamp_signup", "last_changed")),
         _SORT_DIR, Param("since_last_campaign", "boolean"), Param("unsubscribed_since")),
        source=_source("ListsApi.get_list_members_info"),
    ),
    Operation(
        "getListsIdMembersId", "GET", "/3.0/lists/{list_id}/members/{subscriber_hash}", _TRIM,
        source=_source("ListsApi.get_list_member"),
    ),
    Operation(
        "deleteListsIdMembersId", "DELETE", "/3.0/lists/{list_id}/members/{subscriber_hash}",
        source=_source("ListsApi.delete_list_member"),
    ),
    Operation(
        "postListsId", "POST", "/3.0/lists/{list_id}",
        (Param("skip_merge_validation", "boolean"), Param("skip_duplicate_check", "boolean")),
        BATCH_BODY, source=_source("ListsApi.batch_list_members"),
    ),
    Operation(
        "getListsIdMergeFields", "GET", "/3.0/lists/{list_id}/merge-fields",
        (*_TRIM, *_PAGE, Param("type", enum=MERGE_TYPES), Param("required", "boolean")),
        source=_source("ListsApi.get_list_merge_fields"),
    ),
    Operation(
        "postListsIdMergeFields", "POST", "/3.0/lists/{list_id}/merge-fields",
        body=MERGE_FIELD_BODY, source=_source("ListsApi.add_list_merge_field"),
    ),
    Operation(
        "getListsIdMembersIdTags", "GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
        (*_TRIM, *_PAGE), source=_source("ListsApi.get_list_member_tags"),
    ),
    Operation(
        "postListMemberTags", "POST", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
        body=MEMBER_TAGS_BODY, source=_source("ListsApi.update_list_member_tags"),
    ),
    Operation(
        "getListsIdSegments", "GET", "/3.0/lists/{list_id}/segments",
        (*_TRIM, *_PAGE, Param("type", enum=("saved", "static", "fuzzy")),
         Param("since_created_at"), Param("before_created_at"),
         Param("include_cleaned", "boolean"), Param("include_transactional", "boolean"),
         Param("include_unsubscribed", "boolean"), Param("since_updated_at"),
         Param("before_updated_at")),
        source=_source("ListsApi.list_segments"),
    ),
    Operation(
        "postListsIdSegments", "POST", "/3.0/lists/{list_id}/segments", body=SEGMENT_BODY,
        source=_source("ListsApi.create_segment"),
    ),
    Operation(
        "postListsIdSegmentsId", "POST", "/3.0/lists/{list_id}/segments/{segment_id}",
        body=SEGMENT_BATCH_BODY, source=_source("ListsApi.batch_segment_members"),
    ),
    Operation(
        "getCampaigns", "GET", "/3.0/campaigns",
        (*_TRIM, *_PAGE,
         Param("type", enum=("regular", "plaintext", "absplit", "rss", "variate")),
         Param("status", enum=("save", "paused", "schedule", "sending", "sent")),
         Param("before_send_time"), Param("since_send_time"), Param("before_create_time"),
         Param("since_create_time"), Param("list_id"), Param("folder_id"), Param("member_id"),
         Param("sort_field", enum=("create_time", "send_time")), _SORT_DIR),
        source=_source("CampaignsApi.list"),
    ),
    Operation(
        "getReportsIdEmailActivity", "GET", "/3.0/reports/{campaign_id}/email-activity",
        (*_TRIM, *_PAGE, Param("since")),
        source=_source("ReportsApi.get_email_activity_for_campaign"),
    ),
    Operation(
        "getReportsIdUnsubscribed", "GET", "/3.0/reports/{campaign_id}/unsubscribed",
        (*_TRIM, *_PAGE), source=_source("ReportsApi.get_unsubscribed_list_for_campaign"),
    ),
)  # fmt: skip

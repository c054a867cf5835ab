"""Salesforce's request shapes for the calls our connector and `simple-salesforce` make.

Sources, named per operation:
- CLIENT: `simple-salesforce` 1.12.10 — `Salesforce.query/query_more/query_all/limits/describe/
  restful/toolingexecute`, `SFType.get/get_by_custom_id/create/update/upsert/delete/describe/
  metadata`, `bulk2.SFBulk2Type` (`_Bulk2Client.create_job`: `operation`, `columnDelimiter`,
  `lineEnding`, `externalIdFieldName`, `object`, `contentType: CSV`; `close_job`/`abort_job`:
  `{"state"}`), `login.SalesforceLogin` (the OAuth token forms).
- REST: Salesforce REST API Developer Guide (v62.0): resources-query / queryAll (`q` required),
  sObject Collections (`allOrNone`, `records` of at most 200, each with `attributes.type`; an
  update names `id`), sObject rows and upsert by external id, Tooling `CustomField`
  (`FullName`, `Metadata`), and the Bulk API 2.0 guide (create job: `object`, `operation` of
  insert/delete/hardDelete/update/upsert, upsert needs `externalIdFieldName`; close or abort with
  `state` UploadComplete/Aborted).
- OAUTH: Salesforce OAuth 2.0 server-side flows (refresh token, JWT bearer, client credentials).

The sandbox checks every request against `OPERATIONS` (`check_request`), and refuses a bad one as
Salesforce would: 400 `[{"errorCode": "INVALID_FIELD" | "MALFORMED_QUERY" | "JSON_PARSER_ERROR",
"message"}]`.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.conformance import Operation, Param

CLIENT = "simple-salesforce 1.12.10"
REST = "Salesforce REST API v62.0"
COLLECTIONS = f"{REST} resources_composite_sobjects_collections"
BULK = "Salesforce Bulk API 2.0 v62.0"
OAUTH = "Salesforce OAuth 2.0 token endpoint"
DATA = "/services/data/{version}"
MAX_COLLECTION = 200
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_RECORD: dict[str, Any] = {"type": "object", "not": {"type": "array"}}
_ATTRIBUTES: dict[str, Any] = {
    "type": "object",
    "properties": {"type": {"type": "string"}},
}
# A record's `attributes.type` and an update's `id` are checked per record (INVALID_TYPE,
# MISSING_ARGUMENT, MALFORMED_ID in the record's result), so the request only needs objects.
_TYPED: dict[str, Any] = {"type": "object", "properties": {"attributes": _ATTRIBUTES}}


def _collection(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["records"],
        "properties": {
            "allOrNone": {"type": "boolean"},
            "records": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_COLLECTION,
                "items": record,
            },
        },
        "additionalProperties": False,
    }


_WITH_ID: dict[str, Any] = {
    "type": "object",
    "properties": {"attributes": _ATTRIBUTES, "id": {"type": "string"}},
}
_TOKEN = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {
            "enum": [
                "refresh_token",
                JWT_GRANT,
                "client_credentials",
                "password",
                "authorization_code",
            ]
        },
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "refresh_token": {"type": "string"},
        "assertion": {"type": "string"},
    },
    "allOf": [
        {
            "if": {"properties": {"grant_type": {"const": "refresh_token"}}},
            "then": {"required": ["refresh_token"]},
        },
        {
            "if": {"properties": {"grant_type": {"const": JWT_GRANT}}},
            "then": {"required": ["assertion"]},
        },
    ],
}
_JOB = {
    "type": "object",
    "required": ["object", "operation"],
    "properties": {
        "object": {"type": "string", "minLength": 1},
        "operation": {"enum": ["insert", "delete", "hardDelete", "update", "upsert"]},
        "contentType": {"enum": ["CSV"]},
        "columnDelimiter": {"enum": ["BACKQUOTE", "CARET", "COMMA", "PIPE", "SEMICOLON", "TAB"]},
        "lineEnding": {"enum": ["LF", "CRLF"]},
        "externalIdFieldName": {"type": "string", "minLength": 1},
        "assignmentRuleId": {"type": "string"},
    },
    "additionalProperties": False,
}
_JOB_STATE = {
    "type": "object",
    "required": ["state"],
    "properties": {"state": {"enum": ["UploadComplete", "Aborted"]}},
    "additionalProperties": False,
}
_CUSTOM_FIELD = {
    "type": "object",
    "required": ["FullName", "Metadata"],
    "properties": {
        "FullName": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*\.[A-Za-z0-9_]+__c$"},
        "Metadata": {"type": "object", "required": ["label", "type"]},
    },
}
_QUERY = (Param("q", required=True),)

OPERATIONS: tuple[Operation, ...] = (
    Operation("oauth_token", "POST", "/services/oauth2/token", body=_TOKEN,
              source=f"{OAUTH}; {CLIENT} login.SalesforceLogin"),
    Operation("versions", "GET", "/services/data", source=REST),
    Operation("limits", "GET", f"{DATA}/limits", source=f"{REST}; {CLIENT} Salesforce.limits"),
    Operation("query", "GET", f"{DATA}/query", _QUERY, source=f"{REST}; {CLIENT} query"),
    Operation("query_all", "GET", f"{DATA}/queryAll", _QUERY,
              source=f"{REST}; {CLIENT} query(include_deleted=True)"),
    Operation("query_more", "GET", f"{DATA}/query/{{locator}}",
              source=f"{REST} nextRecordsUrl; {CLIENT} query_more"),
    Operation("query_all_more", "GET", f"{DATA}/queryAll/{{locator}}",
              source=f"{REST}; {CLIENT} query_more(include_deleted=True)"),
    Operation("describe_global", "GET", f"{DATA}/sobjects",
              source=f"{REST}; {CLIENT} Salesforce.describe"),
    Operation("sobject_basic_info", "GET", f"{DATA}/sobjects/{{object}}",
              source=f"{REST}; {CLIENT} SFType.metadata"),
    Operation("describe", "GET", f"{DATA}/sobjects/{{object}}/describe",
              source=f"{REST}; {CLIENT} SFType.describe"),
    Operation("create", "POST", f"{DATA}/sobjects/{{object}}", body=_RECORD,
              source=f"{REST}; {CLIENT} SFType.create"),
    Operation("get", "GET", f"{DATA}/sobjects/{{object}}/{{id}}", (Param("fields"),),
              source=f"{REST}; {CLIENT} SFType.get"),
    Operation("update", "PATCH", f"{DATA}/sobjects/{{object}}/{{id}}", body=_RECORD,
              source=f"{REST}; {CLIENT} SFType.update"),
    Operation("delete", "DELETE", f"{DATA}/sobjects/{{object}}/{{id}}",
              source=f"{REST}; {CLIENT} SFType.delete"),
    Operation("get_by_external_id", "GET", f"{DATA}/sobjects/{{object}}/{{field}}/{{value}}",
              (Param("fields"),), source=f"{REST}; {CLIENT} SFType.get_by_custom_id"),
    Operation("upsert_by_external_id", "PATCH",
              f"{DATA}/sobjects/{{object}}/{{field}}/{{value}}", body=_RECORD,
              source=f"{REST} dome_upsert; {CLIENT} SFType.upsert"),
    Operation("collections_create", "POST", f"{DATA}/composite/sobjects",
              body=_collection(_TYPED), source=COLLECTIONS),
    Operation("collections_update", "PATCH", f"{DATA}/composite/sobjects",
              body=_collection(_WITH_ID), source=COLLECTIONS),
    Operation("collections_upsert", "PATCH", f"{DATA}/composite/sobjects/{{object}}/{{field}}",
              body=_collection(_TYPED),
              source=f"{COLLECTIONS}_upsert"),
    Operation("tooling_create_field", "POST", f"{DATA}/tooling/sobjects/CustomField",
              body=_CUSTOM_FIELD, source=f"Tooling API v62.0 CustomField; {CLIENT} toolingexecute"),
    Operation("bulk_create_job", "POST", f"{DATA}/jobs/ingest", body=_JOB,
              source=f"{BULK} create-job; {CLIENT} _Bulk2Client.create_job"),
    Operation("bulk_job_info", "GET", f"{DATA}/jobs/ingest/{{job}}",
              source=f"{BULK}; {CLIENT} _Bulk2Client.get_job"),
    Operation("bulk_job_state", "PATCH", f"{DATA}/jobs/ingest/{{job}}", body=_JOB_STATE,
              source=f"{BULK} close-job; {CLIENT} close_job/abort_job"),
    Operation("bulk_delete_job", "DELETE", f"{DATA}/jobs/ingest/{{job}}",
              source=f"{BULK}; {CLIENT} delete_job"),
    Operation("bulk_upload", "PUT", f"{DATA}/jobs/ingest/{{job}}/batches",
              source=f"{BULK} upload-job-data (text/csv); {CLIENT} upload_job_data"),
    Operation("bulk_results", "GET", f"{DATA}/jobs/ingest/{{job}}/{{kind}}",
              source=f"{BULK} successfulResults/failedResults/unprocessedrecords; {CLIENT} "
              "get_ingest_results"),
)  # fmt: skip

"""HubSpot's schema facts for the operations the connector (and a neighbouring tool) calls.

The CRM operations are taken from HubSpot's official Python client, `hubspot-api-client` 12.0.0
(generated from HubSpot's OpenAPI files): the query names are each API method's `all_params`
(as sent: `properties_with_history` → `propertiesWithHistory`), the bodies are its request
models (`attribute_map` keys, required fields, `allowed_values` enums); an input model's keys
are all it knows, so other keys are refused. Limits the models do not carry (100 a page and a
batch, 200 a search page, 5 filter groups of at most 6 filters) are from HubSpot's docs
(shared/api/hubspot.md §2), and so are the two v1 engagement reads, which the client has no
generated API for. Every operation is declared under both path forms: `/crm/v3/…` and the dated
`/crm/objects/2026-03/…` ("the same body shapes as v3; only the paths change").

`tests/contract/test_hubspot.py` checks this table against the client's models, so a model
that changes in a new client version shows up there.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.conformance import Operation, Param

CLIENT = "hubspot-api-client 12.0.0"
VERSIONS = ("v3", "2026-03")
STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
VALUES: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
BOOL_QUERY = Param("archived", "boolean")
READ_QUERY = (  # `get_by_id` of contacts and tasks
    Param("properties", repeated=True),
    Param("propertiesWithHistory", repeated=True),
    Param("associations", repeated=True),
    BOOL_QUERY,
    Param("idProperty"),
)
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")  # fmt: skip
PROPERTY_TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = ("textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
               "booleancheckbox", "calculation_equation")  # fmt: skip
ASSOCIATION_CATEGORIES = ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED")
# the `type` values of HubSpot's email events API reference (v1 events)
EMAIL_EVENT_TYPES = ("SENT", "DROPPED", "PROCESSED", "DELIVERED", "DEFERRED", "BOUNCE", "OPEN",
                     "CLICK", "PRINT", "FORWARD", "STATUSCHANGE", "SPAMREPORT")  # fmt: skip


def model(required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    """A request model as JSON Schema: its keys (and no others), the required ones."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}  # fmt: skip
    if required:
        schema["required"] = list(required)
    return schema


def inputs(item: dict[str, Any], max_items: int = 100) -> dict[str, Any]:
    """`{"inputs": [...]}` of a batch call: at most 100 inputs ([doc] batch limits)."""
    return model(("inputs",), inputs={"type": "array", "maxItems": max_items, "items": item})


OBJECT_ID = model(("id",), id={"type": "string"})  # SimplePublicObjectId, PublicObjectId
BATCH_INPUT = model(  # SimplePublicObjectBatchInput and …BatchInputUpsert (the same keys)
    ("id", "properties"),
    id={"type": "string"}, properties=VALUES, idProperty={"type": "string"},
    objectWriteTraceId={"type": "string"},
)  # fmt: skip
FILTER = model(
    ("propertyName", "operator"),
    propertyName={"type": "string"}, operator={"enum": list(OPERATORS)},
    value={"type": "string"}, highValue={"type": "string"}, values=STRINGS,
)  # fmt: skip
SORT = {  # the model types `sorts` as strings; HubSpot's docs send {propertyName, direction}
    "anyOf": [
        {"type": "string"},
        model(("propertyName",), propertyName={"type": "string"},
              direction={"enum": ["ASCENDING", "DESCENDING"]}),
    ]
}  # fmt: skip
SEARCH = model(  # PublicObjectSearchRequest; limits from [doc] search guide
    (),
    query={"type": "string", "maxLength": 3000},
    limit={"type": "integer", "minimum": 0, "maximum": 200},
    after={"type": "string"},
    sorts={"type": "array", "maxItems": 1, "items": SORT},
    properties=STRINGS,
    filterGroups={"type": "array", "maxItems": 5, "items": model(
        ("filters",), filters={"type": "array", "maxItems": 6, "items": FILTER})},
)  # fmt: skip
BATCH_READ = model(  # BatchReadInputSimplePublicObjectId
    ("properties", "propertiesWithHistory", "inputs"),
    properties=STRINGS, propertiesWithHistory=STRINGS, idProperty={"type": "string"},
    inputs={"type": "array", "maxItems": 100, "items": OBJECT_ID},
)  # fmt: skip
TASK_INPUT = model(  # SimplePublicObjectBatchInputForCreate
    ("properties",),
    properties=VALUES, objectWriteTraceId={"type": "string"},
    associations={"type": "array", "items": model(
        ("to", "types"), to=OBJECT_ID,
        types={"type": "array", "items": model(
            ("associationCategory", "associationTypeId"),
            associationCategory={"enum": list(ASSOCIATION_CATEGORIES)},
            associationTypeId={"type": "integer"})})},
)  # fmt: skip
OPTION = model(  # OptionInput
    ("label", "value", "hidden"),
    label={"type": "string"}, value={"type": "string"}, hidden={"type": "boolean"},
    description={"type": "string"}, displayOrder={"type": "integer"},
)  # fmt: skip
PROPERTY_FIELDS: dict[str, Any] = {  # PropertyUpdate's keys, all optional there
    "label": {"type": "string"}, "description": {"type": "string"},
    "groupName": {"type": "string"}, "type": {"enum": list(PROPERTY_TYPES)},
    "fieldType": {"enum": list(FIELD_TYPES)}, "options": {"type": "array", "items": OPTION},
    "displayOrder": {"type": "integer"}, "hidden": {"type": "boolean"},
    "formField": {"type": "boolean"}, "calculationFormula": {"type": "string"},
    # not in the 12.0.0 models; HubSpot's 2026-03 property reference documents it
    "numberDisplayHint": {"type": "string"},
}  # fmt: skip
PROPERTY_CREATE = model(
    ("name", "label", "type", "fieldType", "groupName"),
    name={"type": "string"}, hasUniqueValue={"type": "boolean"},
    externalOptions={"type": "boolean"}, referencedObjectType={"type": "string"},
    **PROPERTY_FIELDS,
)  # fmt: skip
PROPERTY_UPDATE = model((), **PROPERTY_FIELDS)
GROUP_CREATE = model(
    ("name", "label"), name={"type": "string"}, label={"type": "string"},
    displayOrder={"type": "integer"},
)  # fmt: skip
PROPERTY_BATCH_READ = model(  # BatchReadInputPropertyName
    ("archived", "inputs"), archived={"type": "boolean"},
    inputs={"type": "array", "items": model(("name",), name={"type": "string"})},
)  # fmt: skip
MERGE = model(
    ("primaryObjectId", "objectIdToMerge"),
    primaryObjectId={"type": "string"}, objectIdToMerge={"type": "string"},
)  # fmt: skip

# (name, method, path below /crm/<objects|properties>/, query, body, the client's method)
CRM: tuple[tuple[str, str, str, tuple[Param, ...], dict[str, Any] | None, str], ...] = (
    ("contacts.list", "GET", "objects:contacts", (
        Param("limit", "integer", minimum=1, maximum=100), Param("after"),
        Param("properties", repeated=True), Param("propertiesWithHistory", repeated=True),
        Param("associations", repeated=True), BOOL_QUERY,
    ), None, "crm.contacts.basic_api.get_page"),
    ("contacts.get", "GET", "objects:contacts/{contactId}", READ_QUERY, None,
     "crm.contacts.basic_api.get_by_id"),
    ("contacts.archive", "DELETE", "objects:contacts/{contactId}", (), None,
     "crm.contacts.basic_api.archive"),
    ("contacts.search", "POST", "objects:contacts/search", (), SEARCH,
     "crm.contacts.search_api.do_search"),
    ("contacts.batch_read", "POST", "objects:contacts/batch/read", (BOOL_QUERY,), BATCH_READ,
     "crm.contacts.batch_api.read"),
    ("contacts.batch_update", "POST", "objects:contacts/batch/update", (), inputs(BATCH_INPUT),
     "crm.contacts.batch_api.update"),
    ("contacts.batch_upsert", "POST", "objects:contacts/batch/upsert", (), inputs(BATCH_INPUT),
     "crm.contacts.batch_api.upsert"),
    ("contacts.merge", "POST", "objects:contacts/merge", (), MERGE,
     "crm.contacts.basic_api.merge"),
    ("tasks.batch_create", "POST", "objects:tasks/batch/create", (), inputs(TASK_INPUT),
     "crm.objects.tasks.batch_api.create"),
    ("tasks.get", "GET", "objects:tasks/{taskId}", READ_QUERY, None,
     "crm.objects.tasks.basic_api.get_by_id"),
    ("properties.list", "GET", "properties:contacts", (BOOL_QUERY, Param("properties")), None,
     "crm.properties.core_api.get_all"),
    ("properties.get", "GET", "properties:contacts/{propertyName}",
     (BOOL_QUERY, Param("properties")), None, "crm.properties.core_api.get_by_name"),
    ("properties.create", "POST", "properties:contacts", (), PROPERTY_CREATE,
     "crm.properties.core_api.create"),
    ("properties.update", "PATCH", "properties:contacts/{propertyName}", (), PROPERTY_UPDATE,
     "crm.properties.core_api.update"),
    ("properties.archive", "DELETE", "properties:contacts/{propertyName}", (), None,
     "crm.properties.core_api.archive"),
    ("properties.batch_read", "POST", "properties:contacts/batch/read", (),
     PROPERTY_BATCH_READ, "crm.properties.batch_api.read"),
    ("groups.list", "GET", "properties:contacts/groups", (), None,
     "crm.properties.groups_api.get_all"),
    ("groups.get", "GET", "properties:contacts/groups/{groupName}", (), None,
     "crm.properties.groups_api.get_by_name"),
    ("groups.create", "POST", "properties:contacts/groups", (), GROUP_CREATE,
     "crm.properties.groups_api.create"),
)  # fmt: skip


def crm_path(version: str, where: str) -> str:
    """`objects:contacts` → `/crm/v3/objects/contacts` or `/crm/objects/2026-03/contacts`."""
    kind, rest = where.split(":", 1)
    return f"/crm/{version}/{kind}/{rest}" if version.startswith("v") else (
        f"/crm/{kind}/{version}/{rest}")  # fmt: skip


def _crm_operations() -> list[Operation]:
    return [
        Operation(
            name=name,
            method=method,
            path=crm_path(version, where),
            query=query,
            body=body,
            source=f"{CLIENT}: {api}",
        )
        for version in VERSIONS
        for name, method, where, query, body, api in CRM
    ]


LEGACY = "HubSpot legacy docs (shared/api/hubspot.md §3); no generated client API"
OPERATIONS: tuple[Operation, ...] = (
    *_crm_operations(),
    Operation(
        name="email_events.list", method="GET", path="/email/public/v1/events", source=LEGACY,
        query=(Param("startTimestamp", "integer", minimum=0),
               Param("endTimestamp", "integer", minimum=0), Param("offset"),
               Param("limit", "integer", minimum=1, maximum=1000), Param("recipient"),
               Param("eventType", enum=EMAIL_EVENT_TYPES), Param("campaignId", "integer"),
               Param("appId", "integer"), Param("excludeFilteredEvents", "boolean")),
    ),
    Operation(
        name="forms.submissions", method="GET", source=LEGACY,
        path="/form-integrations/v1/submissions/forms/{formGuid}",
        query=(Param("limit", "integer", minimum=1, maximum=50), Param("after")),
    ),
)  # fmt: skip

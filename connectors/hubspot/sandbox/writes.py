"""The sandbox portal's writes and engagement reads: batch update/upsert, merge, archive,
properties and groups, tasks, email events, form submissions, and the test-only volume tools."""

from __future__ import annotations

import base64
from typing import Any

from connectors.hubspot.sandbox.data import iso, synthetic_contact
from connectors.hubspot.sandbox.portal import (
    VALID_PAIRS,
    Answer,
    Portal,
    batch_answer,
    error,
    standard_error,
    valid_value,
)


def _invalid(portal: Portal, properties: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-property problems, as the `errors` of a StandardError."""
    problems = []
    for name, value in properties.items():
        definition = portal.properties.get(name)
        context = {"propertyName": [name]}
        if definition is None:
            problems.append({"message": f'Property "{name}" does not exist',
                             "code": "PROPERTY_DOESNT_EXIST", "context": context})  # fmt: skip
        elif (definition.get("modificationMetadata") or {}).get("readOnlyValue"):
            message = f'"{name}" is a read only property; its value cannot be set.'
            problems.append({"message": message, "code": "READ_ONLY_VALUE", "context": context})
        elif value not in ("", None) and not valid_value(definition, str(value)):
            kind = str(definition.get("type")).upper()
            problems.append({"message": f"{value!r} was not a valid {definition.get('type')}.",
                             "code": f"INVALID_{kind}", "context": context})  # fmt: skip
    return problems


def _trace(item: dict[str, Any], ref: str) -> dict[str, list[str]]:
    context = {"ids": [ref]}
    if item.get("objectWriteTraceId") is not None:
        context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
    return context


def batch_update(portal: Portal, inputs: list[dict[str, Any]]) -> Answer:
    if len(inputs) > 100:
        return 400, error(
            "VALIDATION_ERROR", "Batch operations are limited to 100 records at a time"
        )
    started = iso(portal.now_ms())
    results, errors = [], []
    for item in inputs:
        ref, props = str(item.get("id") or ""), dict(item.get("properties") or {})
        contact = portal.resolve(ref)
        if contact is None or not contact.live:
            message = "Could not get some CONTACT objects, they may be deleted or not exist."
            errors.append(standard_error("OBJECT_NOT_FOUND", message, context=_trace(item, ref)))
            continue
        problems = _invalid(portal, props)
        if problems:
            errors.append(standard_error("VALIDATION_ERROR", "Property values were not valid",
                                         context=_trace(item, ref), errors=problems))  # fmt: skip
            continue
        portal.set_properties(contact, props)
        view = contact.view(props)
        if item.get("objectWriteTraceId") is not None:
            view["objectWriteTraceId"] = str(item["objectWriteTraceId"])
        results.append(view)
    return batch_answer(results, errors, started)


def batch_upsert(portal: Portal, inputs: list[dict[str, Any]]) -> Answer:
    """Upsert by email: all or nothing ("partial upserts are not supported" with email)."""
    if len(inputs) > 100:
        return 400, error(
            "VALIDATION_ERROR", "Batch operations are limited to 100 records at a time"
        )
    problems: list[dict[str, Any]] = []
    for item in inputs:
        if item.get("idProperty") != "email":
            return 400, error("VALIDATION_ERROR", "the sandbox upserts by idProperty=email only")
        found = _invalid(portal, dict(item.get("properties") or {}))
        problems.extend({**p, "context": {**p["context"], **_trace(item, str(item.get("id")))}}
                        for p in found)  # fmt: skip
    if problems:
        message = (
            "Partial upserts are not supported when using email as the idProperty; "
            "the batch was not written."
        )
        return 400, error("VALIDATION_ERROR", message, errors=problems)
    started, results = iso(portal.now_ms()), []
    for item in inputs:
        email, props = str(item.get("id") or "").lower(), dict(item.get("properties") or {})
        contact = portal.by_email(email)
        new = contact is None
        if contact is None:
            contact = portal.add_contact({"email": email})
        portal.set_properties(contact, props)
        view = contact.view(["email", *props])
        view["new"] = new
        if item.get("objectWriteTraceId") is not None:
            view["objectWriteTraceId"] = str(item["objectWriteTraceId"])
        results.append(view)
    return batch_answer(results, [], started)


def merge(portal: Portal, body: dict[str, Any]) -> Answer:
    """Merge `objectIdToMerge` into `primaryObjectId`, which lists it in `hs_merged_object_ids`."""
    primary = portal.resolve(str(body.get("primaryObjectId") or ""))
    merged = portal.resolve(str(body.get("objectIdToMerge") or ""))
    if primary is None or merged is None or primary is merged or not (primary.live and merged.live):
        return 400, error("VALIDATION_ERROR", "Both ids must be distinct live contacts")
    ids = [i for i in (primary.properties.get("hs_merged_object_ids") or "").split(";") if i]
    ids += [
        merged.id,
        *(i for i in (merged.properties.get("hs_merged_object_ids") or "").split(";") if i),
    ]
    primary.properties["hs_merged_object_ids"] = ";".join(dict.fromkeys(ids))
    if merged.properties.get("email"):
        primary.properties["hs_additional_emails"] = str(merged.properties["email"])
    merged.merged_into = primary.id
    primary.updated_ms = portal.now_ms()
    portal.changed()
    return 200, primary.view(["email", "hs_merged_object_ids", "lastmodifieddate"])


def archive(portal: Portal, cid: str) -> Answer:
    contact = portal.contacts.get(cid)
    if contact is None or not contact.live:
        return 404, error("OBJECT_NOT_FOUND", "Object not found. objectId are usually numeric.")
    contact.archived_ms = portal.now_ms()
    portal.changed()
    return 204, {}


def create_property(portal: Portal, body: dict[str, Any]) -> Answer:
    problem = _definition_problem(portal, body)
    if problem:
        return 400, error("VALIDATION_ERROR", f"Invalid property definition: {problem}")
    if body["name"] in portal.properties:
        return 409, error("CONFLICT", f"Property named '{body['name']}' already exists.")
    now = iso(portal.now_ms())
    definition = {"description": "", "options": [], "displayOrder": -1, "hidden": False,
                  "formField": False, "calculated": False, "externalOptions": False,
                  "hasUniqueValue": False, "hubspotDefined": False, "archived": False, **body,
                  "createdAt": now, "updatedAt": now,
                  "modificationMetadata": {"readOnlyValue": False, "readOnlyDefinition": False,
                                           "archivable": True}}  # fmt: skip
    portal.properties[body["name"]] = definition
    return 201, definition


def _definition_problem(portal: Portal, body: dict[str, Any]) -> str | None:
    """What makes a property definition invalid ([doc] properties guide), if anything."""
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        return f"missing {', '.join(missing)}"
    kind, field_type = body["type"], body["fieldType"]
    if field_type not in VALID_PAIRS.get(str(kind), ()):
        return f"type {kind!r} cannot have fieldType {field_type!r}"
    if kind == "enumeration" and not body.get("options"):
        return "an enumeration needs options"
    if body["groupName"] not in portal.groups:
        return f"property group {body['groupName']!r} does not exist"
    return None


def create_group(portal: Portal, body: dict[str, Any]) -> Answer:
    name = str(body.get("name") or "")
    if not name or not body.get("label"):
        return 400, error("VALIDATION_ERROR", "A property group needs a name and a label")
    if name in portal.groups:
        return 409, error("CONFLICT", f"Property group '{name}' already exists.")
    portal.groups[name] = {"name": name, "label": body["label"], "archived": False,
                           "displayOrder": int(body.get("displayOrder", -1))}  # fmt: skip
    return 201, portal.groups[name]


def create_tasks(portal: Portal, inputs: list[dict[str, Any]]) -> Answer:
    """`tasks/batch/create`: 201 with the created tasks (SimplePublicObject), or a 207."""
    started = iso(portal.now_ms())
    results, errors = [], []
    for item in inputs:
        props = dict(item.get("properties") or {})
        targets = [str((a.get("to") or {}).get("id")) for a in item.get("associations") or []]
        context = _trace(item, ",".join(targets))
        if not props.get("hs_timestamp"):
            errors.append(
                standard_error("VALIDATION_ERROR", "hs_timestamp is required", context=context)
            )
        elif not targets or any(portal.resolve(t) is None for t in targets):
            errors.append(
                standard_error("VALIDATION_ERROR", "association target not found", context=context)
            )
        else:
            task_id = str(900_000 + len(portal.tasks))
            portal.tasks[task_id] = {"id": task_id, "properties": props, "contacts": targets,
                                     "createdAt": started}  # fmt: skip
            result = task_view(portal.tasks[task_id], list(props))
            if item.get("objectWriteTraceId") is not None:
                result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
            results.append(result)
    return batch_answer(results, errors, started, created=True)


def task_view(task: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A task as a SimplePublicObject with the properties asked for."""
    props = {"hs_object_id": task["id"], **task["properties"]}
    return {"id": task["id"], "properties": {n: props.get(n) for n in names or props},
            "createdAt": task["createdAt"], "updatedAt": task["createdAt"],
            "archived": False}  # fmt: skip


def _token(index: int) -> str:
    return base64.urlsafe_b64encode(f"o:{index}".encode()).decode()


def _index(token: str | None) -> int:
    try:
        return int(base64.urlsafe_b64decode((token or "").encode()).decode().split(":")[1])
    except (ValueError, IndexError):
        return 0


def email_events(portal: Portal, params: dict[str, str]) -> Answer:
    """`/email/public/v1/events`: newest first, both timestamps inclusive, offset paging."""
    start, end = int(params.get("startTimestamp") or 0), int(params.get("endTimestamp") or 1 << 62)
    limit = int(params.get("limit") or 100)
    if limit > 1000:
        return 400, error("VALIDATION_ERROR", "limit must be at most 1000")
    skip_filtered = params.get("excludeFilteredEvents") == "true"
    end = min(end, portal.at_ms() or end)  # nothing after the world's clock, when set
    found = [e for e in portal.events if start <= e["created"] <= end
             and not (skip_filtered and e.get("filteredEvent"))
             and params.get("recipient") in (None, e["recipient"])
             and params.get("eventType") in (None, e["type"])]  # fmt: skip
    first = _index(params.get("offset"))
    more = first + limit < len(found)
    body: dict[str, Any] = {"hasMore": more, "events": found[first : first + limit]}
    body["offset"] = _token(first + limit) if more else _token(len(found))
    return 200, body


def form_submissions(portal: Portal, form_id: str, params: dict[str, str]) -> Answer:
    if form_id not in portal.submissions:
        return 404, error("OBJECT_NOT_FOUND", f"form {form_id} not found")
    limit = int(params.get("limit") or 20)
    if limit > 50:
        return 400, error("VALIDATION_ERROR", "limit must be at most 50")
    rows, first = portal.submissions[form_id], _index(params.get("after"))
    at = portal.at_ms()
    if at is not None:  # only what was submitted by the world's clock
        rows = [r for r in rows if r["submittedAt"] <= at]
    body: dict[str, Any] = {"results": rows[first : first + limit]}
    if first + limit < len(rows):
        body["paging"] = {"next": {"after": _token(first + limit), "link": ""}}
    return 200, body


def generate(portal: Portal, count: int, per_ms: int = 1) -> list[str]:
    """Add `count` contacts modified just now, `per_ms` of them in each millisecond."""
    base = portal.now_ms() - count // max(1, per_ms) - 1
    made = []
    for n in range(count):
        contact = synthetic_contact(
            portal.next_id, str(portal.next_id), base, base + n // max(1, per_ms)
        )
        portal.contacts[contact.id] = contact
        portal.next_id += 1
        made.append(contact.id)
    portal.changed()
    return made


def touch(portal: Portal, ids: list[str], per_ms: int = 1) -> list[str]:
    """Mark contacts modified just now (`per_ms` per millisecond), as an edit in HubSpot would."""
    base = portal.now_ms() - len(ids) // max(1, per_ms) - 1
    for n, cid in enumerate(ids):
        portal.contacts[cid].updated_ms = base + n // max(1, per_ms)
    portal.changed()
    return ids


def update_property(portal: Portal, name: str, body: dict[str, Any]) -> Answer:
    """PATCH a property: label, description or (enumerations) options."""
    definition = portal.properties.get(name)
    if definition is None:
        return 404, error("OBJECT_NOT_FOUND", f"Unable to find property {name!r}")
    if "options" in body and definition.get("type") != "enumeration":
        return 400, error("VALIDATION_ERROR", f"{name!r} is not an enumeration; it has no options")
    for key in ("label", "description", "options", "hidden"):
        if key in body:
            definition[key] = body[key]
    return 200, definition

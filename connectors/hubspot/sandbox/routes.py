"""The sandbox's HubSpot routes: one handler per vendor operation, under both path versions
(`/crm/v3/…` and `/crm/objects/2026-03/…`), each wrapped by `Sandbox.api` (auth, budgets,
request conformance). The OAuth token endpoint and the test-only routes are in `app.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from connectors.hubspot.sandbox import writes
from connectors.hubspot.sandbox.data import DEFAULT_SEARCH_PROPS, iso
from connectors.hubspot.sandbox.portal import (
    Answer,
    Handler,
    Portal,
    batch_answer,
    error,
    standard_error,
)

# `Sandbox.api`: wraps a handler, labelled for the call counters, with auth, budgets, conformance
Wrap = Callable[..., Callable[..., Any]]

VERSIONS = ("v3", "2026-03")
DEFAULTS = list(DEFAULT_SEARCH_PROPS)  # what a read without `properties` returns


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _inputs(body: Any) -> list[dict[str, Any]]:
    inputs = (body or {}).get("inputs") if isinstance(body, dict) else None
    return [i for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []


def _names(request: Request, key: str = "properties") -> list[str]:
    """A list parameter: repeated (`properties=a&properties=b`, as the official client sends
    it) or comma-separated (`properties=a,b`); HubSpot reads both."""
    return [n for value in request.query_params.getlist(key) for n in value.split(",") if n]


def _flag(request: Request, key: str = "archived") -> bool:
    """A boolean parameter: the official client sends Python's `True`; HubSpot reads any case."""
    return (request.query_params.get(key) or "").lower() == "true"


def routes(portal: Portal, api: Wrap, batch_sizes: dict[str, list[int]]) -> list[Route]:
    """The vendor routes over `portal`, each wrapped by `api`; `batch_sizes` counts inputs."""

    def sized(kind: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        batch_sizes.setdefault(kind, []).append(len(inputs))
        return inputs

    async def list_contacts(request: Request) -> Answer:
        q = request.query_params
        try:
            limit = int(q.get("limit") or 10)
        except ValueError:
            return 400, error("VALIDATION_ERROR", "limit must be an integer")
        return portal.list_page(limit, q.get("after"), _flag(request), _names(request) or DEFAULTS)

    async def get_contact(request: Request) -> Answer:
        by_email = request.query_params.get("idProperty") == "email"
        names = _names(request) or DEFAULTS
        return portal.get_one(request.path_params["contact_id"], by_email, _flag(request), names)

    async def search(request: Request) -> Answer:
        body = await request.body()
        if len(body) > 3000:
            return 400, error("VALIDATION_ERROR", "The search body may be at most 3,000 characters")
        return portal.search(await _json(request) or {})

    async def batch_read(request: Request) -> Answer:
        body = await _json(request) or {}
        inputs = _inputs(body)
        if len(inputs) > 100:
            return 400, error("VALIDATION_ERROR", "Batch operations are limited to 100 records")
        names = [str(n) for n in body.get("properties") or []]
        return portal.batch_read(inputs, names, body.get("idProperty") == "email", _flag(request))

    async def batch_update(request: Request) -> Answer:
        return writes.batch_update(portal, sized("update", _inputs(await _json(request))))

    async def batch_upsert(request: Request) -> Answer:
        return writes.batch_upsert(portal, sized("upsert", _inputs(await _json(request))))

    async def merge(request: Request) -> Answer:
        return writes.merge(portal, await _json(request) or {})

    async def archive(request: Request) -> Answer:
        return writes.archive(portal, request.path_params["contact_id"])

    async def tasks(request: Request) -> Answer:
        return writes.create_tasks(portal, sized("tasks", _inputs(await _json(request))))

    async def get_task(request: Request) -> Answer:
        task = portal.tasks.get(request.path_params["task_id"])
        if task is None:
            return 404, error(
                "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
            )
        return 200, writes.task_view(task, _names(request))

    async def list_properties(request: Request) -> Answer:
        return 200, {"results": list(portal.properties.values())}

    async def get_property(request: Request) -> Answer:
        name = request.path_params["name"]
        found = portal.properties.get(name)
        if found is None:
            return 404, error("OBJECT_NOT_FOUND", f"Unable to find property {name!r}")
        return 200, found

    async def read_properties(request: Request) -> Answer:
        started = iso(portal.now_ms())
        names = [str((i or {}).get("name") or "") for i in _inputs(await _json(request))]
        found = [portal.properties[n] for n in names if n in portal.properties]
        missing = [n for n in names if n not in portal.properties]
        message = "Could not get some PROPERTY objects, they may be deleted or not exist."
        errors = [standard_error("OBJECT_NOT_FOUND", message, context={"name": missing})]
        return batch_answer(found, errors if missing else [], started)

    async def archive_property(request: Request) -> Answer:
        name = request.path_params["name"]
        if portal.properties.pop(name, None) is None:
            return 404, error("OBJECT_NOT_FOUND", f"Unable to find property {name!r}")
        return 204, {}

    async def create_property(request: Request) -> Answer:
        return writes.create_property(portal, await _json(request) or {})

    async def patch_property(request: Request) -> Answer:
        return writes.update_property(portal, request.path_params["name"],
                                      await _json(request) or {})  # fmt: skip

    async def get_group(request: Request) -> Answer:
        name = request.path_params["name"]
        if name not in portal.groups:
            return 404, error("OBJECT_NOT_FOUND", f"Unable to find property group {name!r}")
        return 200, portal.groups[name]

    async def list_groups(request: Request) -> Answer:
        return 200, {"results": list(portal.groups.values())}

    async def create_group(request: Request) -> Answer:
        return writes.create_group(portal, await _json(request) or {})

    async def email_events(request: Request) -> Answer:
        return writes.email_events(portal, dict(request.query_params))

    async def forms(request: Request) -> Answer:
        params = dict(request.query_params)
        return writes.form_submissions(portal, request.path_params["form_id"], params)

    crm: list[tuple[str, str, str, Handler]] = [
        ("objects", "contacts", "GET", list_contacts),
        ("objects", "contacts/search", "POST", search),
        ("objects", "contacts/batch/read", "POST", batch_read),
        ("objects", "contacts/batch/update", "POST", batch_update),
        ("objects", "contacts/batch/upsert", "POST", batch_upsert),
        ("objects", "contacts/merge", "POST", merge),
        ("objects", "contacts/{contact_id}", "GET", get_contact),
        ("objects", "contacts/{contact_id}", "DELETE", archive),
        ("objects", "tasks/batch/create", "POST", tasks),
        ("objects", "tasks/{task_id}", "GET", get_task),
        ("properties", "contacts", "GET", list_properties),
        ("properties", "contacts", "POST", create_property),
        ("properties", "contacts/groups", "GET", list_groups),
        ("properties", "contacts/groups/{name}", "GET", get_group),
        ("properties", "contacts/groups", "POST", create_group),
        ("properties", "contacts/batch/read", "POST", read_properties),
        ("properties", "contacts/{name}", "GET", get_property),
        ("properties", "contacts/{name}", "PATCH", patch_property),
        ("properties", "contacts/{name}", "DELETE", archive_property),
    ]
    routes: list[Route] = []
    for kind, rest, method, handler in crm:
        endpoint = api(f"{kind}/{rest}", handler, search=rest.endswith("/search"))
        for version in VERSIONS:
            path = (f"/crm/{version}/{kind}/{rest}" if version.startswith("v")
                    else f"/crm/{kind}/{version}/{rest}")  # fmt: skip
            routes.append(Route(path, endpoint, methods=[method]))
    return [
        *routes,
        Route("/email/public/v1/events", api("email/events", email_events)),
        Route("/form-integrations/v1/submissions/forms/{form_id}", api("forms", forms)),
    ]

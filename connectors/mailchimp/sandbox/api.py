"""The vendor paths of the Mailchimp sandbox: handlers over one `Audience`, in Mailchimp's shapes.

`connectors.mailchimp.sandbox.app` wraps them with auth, the connection limit and injected faults.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.mailchimp.sandbox import data
from connectors.mailchimp.sandbox.data import Activity, Audience

Handler = Callable[[Request, Audience], Awaitable[Response]]
TEXT_BYTES = 255  # a text merge field's value is truncated to 255 bytes (merge-fields docs)


class Problem(Exception):
    """An error answered as `application/problem+json`."""

    def __init__(self, status: int, title: str, detail: str, errors: list[Any] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []

    def response(self, path: str = "") -> Response:
        body = {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                "title": self.title, "status": self.status, "detail": self.detail,
                "instance": str(uuid.uuid4())}  # fmt: skip
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, self.status, media_type="application/problem+json")


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "Invalid Resource", f"{name}: not a date/time: {value!r}") from None
    # Mailchimp reads date filters as UTC whatever the offset says (a documented pitfall).
    return when.replace(tzinfo=UTC)


def pick(document: Any, fields: str | None) -> Any:
    """Keep only the dot-notation paths of `fields` (comma list, no spaces) in `document`."""
    if not fields:
        return document
    return _select(document, [p.split(".") for p in fields.split(",") if p])


def _select(obj: Any, paths: list[list[str]]) -> Any:
    if isinstance(obj, list):
        return [_select(o, paths) for o in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key in dict.fromkeys(p[0] for p in paths):
        if key in obj:
            rest = [p[1:] for p in paths if p[0] == key]
            out[key] = obj[key] if any(not r for r in rest) else _select(obj[key], rest)
    return out


def _page(request: Request, items: list[Any]) -> tuple[list[Any], int]:
    """The `count`/`offset` slice of `items` (count defaults to 10, at most 1000)."""
    try:
        count = int(request.query_params.get("count", 10))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        raise Problem(400, "Invalid Resource", "count and offset must be integers") from None
    if not 1 <= count <= 1000 or offset < 0:
        raise Problem(400, "Invalid Resource", "count must be 1 to 1000 and offset >= 0")
    return items[offset : offset + count], len(items)


def _answer(request: Request, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(pick(body, request.query_params.get("fields")))


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise Problem(400, "JSON Parse Exception", "the request body is not valid JSON") from None


def _list(request: Request, audience: Audience) -> None:
    if request.path_params.get("list_id") != audience.list_id:
        raise Problem(404, "Resource Not Found", "The requested resource could not be found.")


def _member(request: Request, audience: Audience) -> data.Member:
    _list(request, audience)
    member = audience.members.get(str(request.path_params["subscriber_hash"]).lower())
    if member is None:
        raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
    return member


# -- the API -------------------------------------------------------------------------------------


async def root(request: Request, audience: Audience) -> Response:
    return _answer(request, {"account_id": "sandbox", "login_id": "1", "account_name": "Sandbox",
                             "email": "owner@example.com", "role": "owner"})  # fmt: skip


async def ping(request: Request, audience: Audience) -> Response:
    return JSONResponse({"health_status": "Everything's Chimpy!"})


async def member(request: Request, audience: Audience) -> Response:
    """One member by subscriber hash; DELETE archives it (Mailchimp keeps archived members)."""
    found = _member(request, audience)
    if request.method == "DELETE":
        if found.status == "archived":
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        found.status, found.last_changed = "archived", audience.clock()
        return Response(status_code=204)
    seen = audience.seen(found)
    if seen is None:  # not joined yet on the world's clock
        raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
    rendered = data.render_member(seen, audience.list_id, audience.tag_ids)
    return _answer(request, rendered)


async def members(request: Request, audience: Audience) -> Response:
    _list(request, audience)
    q = request.query_params
    since = _when(q.get("since_last_changed"), "since_last_changed")
    before = _when(q.get("before_last_changed"), "before_last_changed")
    seen = (audience.seen(m) for m in audience.members.values())
    found = [
        m
        for m in seen
        if m is not None
        and (since is None or m.last_changed > since)
        and (before is None or m.last_changed < before)
        and (not q.get("status") or m.status == q.get("status"))
    ]
    sort = {"last_changed": "last_changed", "timestamp_opt": "timestamp_opt"}.get(
        q.get("sort_field", ""), "web_id"
    )
    found.sort(key=lambda m: (getattr(m, sort), m.web_id), reverse=q.get("sort_dir") == "DESC")
    page, total = _page(request, found)
    audience.counters["members_served"] += len(page)
    rendered = [data.render_member(m, audience.list_id, audience.tag_ids) for m in page]
    return _answer(
        request, {"members": rendered, "list_id": audience.list_id, "total_items": total}
    )


async def batch_subscribe(request: Request, audience: Audience) -> Response:
    _list(request, audience)
    body = await _json(request)
    items = body.get("members") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise Problem(400, "Invalid Resource", "members: required, a list")
    if len(items) > 500:
        raise Problem(400, "Invalid Resource", "members: no more than 500 members per call")
    audience.batch_sizes.append(len(items))
    result: dict[str, list[Any]] = {"new_members": [], "updated_members": [], "errors": []}
    for item in items:
        try:
            kind, member = _subscribe(audience, item, bool(body.get("update_existing")))
        except Problem as exc:
            email = item.get("email_address") if isinstance(item, dict) else None
            field = exc.errors[0] if exc.errors else {}
            result["errors"].append({"email_address": email, "error": exc.detail,
                                     "error_code": exc.title, "field": field.get("field", ""),
                                     "field_message": field.get("message", "")})  # fmt: skip
            continue
        result[kind].append(data.render_member(member, audience.list_id, audience.tag_ids))
    return JSONResponse({**result, "total_created": len(result["new_members"]),
                         "total_updated": len(result["updated_members"]),
                         "error_count": len(result["errors"])})  # fmt: skip


def _subscribe(audience: Audience, item: Any, update: bool) -> tuple[str, data.Member]:
    email = str(item.get("email_address") or "") if isinstance(item, dict) else ""
    local, at, domain = email.partition("@")
    if not (local and at and "." in domain):
        detail = f"{email} looks fake or invalid, please enter a real email address."
        raise Problem(400, "ERROR_GENERIC", detail)
    merge = _merge_values(audience, item.get("merge_fields") or {})
    status = item.get("status")
    member = audience.members.get(data.subscriber_hash(email))
    if member is None or member.status == "archived":  # an archived contact is added anew
        status = status or item.get("status_if_new")
        if status not in ("subscribed", "unsubscribed", "cleaned", "pending", "transactional"):
            error = [{"field": "status", "message": "a new member needs a status"}]
            raise Problem(400, "ERROR_GENERIC", f"{email}: status is required", error)
        if member is not None:
            member.status, member.last_changed = status, audience.clock()
            member.merge_fields.update(merge)
            return "new_members", member
        return "new_members", audience.add_member(email, status, merge)
    if not update:
        raise Problem(400, "ERROR_CONTACT_EXISTS", f"{email} is already a list member.")
    if status == "subscribed" and member.status in ("unsubscribed", "cleaned"):
        raise Problem(400, "ERROR_GENERIC", f"{email} is in a compliance state.")
    member.merge_fields.update(merge)
    member.status = status or member.status
    member.last_changed = audience.clock()
    return "updated_members", member


def _merge_values(audience: Audience, values: Mapping[str, Any]) -> dict[str, Any]:
    """Known merge fields only (the others are dropped, and counted); numbers are checked."""
    merge = {}
    for tag, value in values.items():
        spec = audience.merge_field(tag)
        if spec is None:
            audience.counters["dropped_merge_fields"] += 1
            continue
        if spec["type"] == "number" and value != "" and not isinstance(value, (int, float)):
            error = [{"field": tag, "message": "Please enter a number"}]
            raise Problem(400, "ERROR_GENERIC", "Your merge fields were invalid.", error)
        if spec["type"] == "text" and isinstance(value, str):
            # Mailchimp cuts a long text value rather than refusing it
            value = value.encode()[:TEXT_BYTES].decode(errors="ignore")
        merge[spec["tag"]] = value
    return merge


async def merge_fields(request: Request, audience: Audience) -> Response:
    _list(request, audience)
    if request.method == "GET":
        page, total = _page(request, audience.merge_fields)
        return _answer(request, {"merge_fields": page, "list_id": audience.list_id,
                                 "total_items": total})  # fmt: skip
    body = await _json(request)
    name, kind = body.get("name"), body.get("type")
    if not name or kind not in data.MERGE_TYPES:
        errors = [{"field": "type" if name else "name", "message": "This value is not valid"}]
        raise Problem(400, "Invalid Resource", "The resource submitted could not be validated.",
                      errors)  # fmt: skip
    tag = str(body.get("tag") or "".join(c for c in name.upper() if c.isalnum())[:10])
    if audience.merge_field(tag) is not None:
        detail = f'A Merge Field with the tag "{tag.upper()}" already exists for this list.'
        raise Problem(400, "Invalid Resource", detail)
    extra = {k: body[k] for k in ("required", "public", "default_value", "help_text") if k in body}
    return JSONResponse(audience.add_merge_field(name, kind, tag, **extra))


async def member_tags(request: Request, audience: Audience) -> Response:
    member = _member(request, audience)
    if request.method == "GET":
        tags = [{"id": audience.tag_id(n), "name": n, "date_added": data.stamp(d)}
                for n, d in sorted(member.tags.items())]  # fmt: skip
        return JSONResponse({"tags": tags, "total_items": len(tags)})
    body = await _json(request)
    syncing = bool(body.get("is_syncing", False))
    for tag in body.get("tags") or []:
        name, status = str(tag.get("name") or ""), tag.get("status")
        if not name or status not in ("active", "inactive"):
            raise Problem(400, "Invalid Resource", "each tag needs a name and a status")
        if audience.tag_member(member, name, status == "active", "member"):
            audience.tag_events[-1]["is_syncing"] = syncing
    audience.counters["tag_calls"] += 1
    return Response(status_code=204)


async def segments(request: Request, audience: Audience) -> Response:
    """Tags are static segments: list them (`type=static`), or make one (`static_segment`)."""
    _list(request, audience)
    if request.method == "GET":
        kind = request.query_params.get("type")
        if kind not in (None, "", "saved", "static", "fuzzy"):
            raise Problem(400, "Invalid Resource", "type: must be saved, static or fuzzy")
        names = list(audience.tag_ids) if kind in (None, "", "static") else []
        page, total = _page(request, names)
        rendered = [data.render_segment(audience, n) for n in page]
        return _answer(request, {"segments": rendered, "list_id": audience.list_id,
                                 "total_items": total})  # fmt: skip
    body = await _json(request)
    name = body.get("name") if isinstance(body, dict) else None
    emails = body.get("static_segment") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        errors = [{"field": "name", "message": "This value should not be blank."}]
        raise Problem(400, "Invalid Resource", "The resource submitted could not be validated.",
                      errors)  # fmt: skip
    if not isinstance(emails, list) or "options" in body:
        detail = "static_segment: a list of emails (this sandbox makes static segments only)"
        raise Problem(400, "Invalid Resource", detail)
    if any(n.casefold() == name.casefold() for n in audience.tag_ids):
        raise Problem(400, "Invalid Resource", f'A tag or segment named "{name}" already exists.')
    audience.tag_id(name)
    for email in emails:  # "emails … not present on the list will be ignored"
        if (member := audience.members.get(data.subscriber_hash(str(email)))) is not None:
            audience.tag_member(member, name, True, "segment")
    return JSONResponse(data.render_segment(audience, name))


async def segment_batch(request: Request, audience: Audience) -> Response:
    """Batch add or remove members of a static segment (a tag), at most 500 of each."""
    _list(request, audience)
    try:
        name = audience.tag_named(int(request.path_params["segment_id"]))
    except ValueError:
        name = None
    if name is None:
        raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
    body = await _json(request)
    lists = {key: (body.get(key) or []) if isinstance(body, dict) else None
             for key in ("members_to_add", "members_to_remove")}  # fmt: skip
    if any(not isinstance(v, list) for v in lists.values()):
        raise Problem(400, "Invalid Resource", "members_to_add, members_to_remove: lists of emails")
    if any(len(v or []) > 500 for v in lists.values()):
        detail = ("Maximum allowed member items exceeded, please provide at most 500 items in "
                  "members_to_add field or members_to_remove field")  # fmt: skip
        raise Problem(400, "Invalid Resource", detail)
    audience.counters["segment_calls"] += 1
    result: dict[str, list[Any]] = {"members_added": [], "members_removed": []}
    invalid: list[str] = []
    for key, active, done in (("members_to_add", True, "members_added"),
                              ("members_to_remove", False, "members_removed")):  # fmt: skip
        for email in lists[key] or []:
            local, at, domain = str(email).partition("@")
            if not (local and at and "." in domain):
                invalid.append(str(email))
                continue
            member = audience.members.get(data.subscriber_hash(str(email)))
            if member is None:  # "emails … not present on the list will be ignored"
                continue
            if audience.tag_member(member, name, active, "segment"):
                result[done].append(data.render_member(member, audience.list_id, audience.tag_ids))
    errors = [{"email_addresses": invalid, "error": "Invalid email address"}] if invalid else []
    return JSONResponse({**result, "errors": errors,
                         "total_added": len(result["members_added"]),
                         "total_removed": len(result["members_removed"]),
                         "error_count": len(invalid)})  # fmt: skip


async def campaigns(request: Request, audience: Audience) -> Response:
    q = request.query_params
    since = _when(q.get("since_send_time"), "since_send_time")
    found = [c for c in audience.campaigns if (since is None or c.send_time >= since)
             and audience.shows(c.send_time)]  # fmt: skip
    if q.get("status") not in (None, "sent") or q.get("list_id") not in (None, audience.list_id):
        found = []
    found.sort(key=lambda c: c.send_time, reverse=q.get("sort_dir") == "DESC")
    page, total = _page(request, found)
    rendered = [data.render_campaign(c, audience.list_id) for c in page]
    return _answer(request, {"campaigns": rendered, "total_items": total})


def _campaign(request: Request, audience: Audience) -> str:
    cid = str(request.path_params["campaign_id"])
    if cid not in {c.id for c in audience.campaigns}:
        raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
    return cid


async def email_activity(request: Request, audience: Audience) -> Response:
    cid = _campaign(request, audience)
    since = _when(request.query_params.get("since"), "since")
    rows: dict[str, list[Activity]] = {}
    for event in audience.activity:
        if (
            event.campaign_id == cid
            and (since is None or event.timestamp > since)
            and audience.shows(event.timestamp)
        ):
            rows.setdefault(event.member_id, []).append(event)
    page, total = _page(request, sorted(rows.items()))
    audience.counters["activity_served"] += sum(len(events) for _, events in page)
    emails = [
        {"campaign_id": cid, "list_id": audience.list_id, "list_is_active": True,
         "email_id": member_id, "email_address": audience.members[member_id].email,
         "activity": [data.render_event(e) for e in sorted(events, key=lambda e: e.timestamp)]}
        for member_id, events in page
    ]  # fmt: skip
    return _answer(request, {"emails": emails, "campaign_id": cid, "total_items": total})


async def unsubscribed(request: Request, audience: Audience) -> Response:
    cid = _campaign(request, audience)
    found = [u for u in audience.unsubscribes
             if u.campaign_id == cid and audience.shows(u.timestamp)]  # fmt: skip
    page, total = _page(request, found)
    rows = []
    for u in page:
        member = audience.members[u.member_id]
        rows.append({"email_id": u.member_id, "email_address": member.email,
                     "merge_fields": dict(member.merge_fields), "vip": False,
                     "timestamp": data.stamp(u.timestamp), "reason": u.reason, "campaign_id": cid,
                     "list_id": audience.list_id, "list_is_active": True})  # fmt: skip
    return _answer(request, {"unsubscribes": rows, "campaign_id": cid, "total_items": total})


API: tuple[tuple[str, Handler, list[str]], ...] = (
    ("/3.0/", root, ["GET"]),
    ("/3.0/ping", ping, ["GET"]),
    ("/3.0/lists/{list_id}/members", members, ["GET"]),
    ("/3.0/lists/{list_id}/members/{subscriber_hash}", member, ["GET", "DELETE"]),
    ("/3.0/lists/{list_id}", batch_subscribe, ["POST"]),
    ("/3.0/lists/{list_id}/merge-fields", merge_fields, ["GET", "POST"]),
    ("/3.0/lists/{list_id}/members/{subscriber_hash}/tags", member_tags, ["GET", "POST"]),
    ("/3.0/lists/{list_id}/segments", segments, ["GET", "POST"]),
    ("/3.0/lists/{list_id}/segments/{segment_id}", segment_batch, ["POST"]),
    ("/3.0/campaigns", campaigns, ["GET"]),
    ("/3.0/reports/{campaign_id}/email-activity", email_activity, ["GET"]),
    ("/3.0/reports/{campaign_id}/unsubscribed", unsubscribed, ["GET"]),
)

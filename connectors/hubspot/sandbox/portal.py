"""What the sandbox's portal does with a request: list, search, read, write, properties, tasks.

Pure data operations returning `(status, body)`; `connectors.hubspot.sandbox.app` adds HTTP, auth,
rate limits and faults. Shapes and limits follow shared/api/hubspot.md: 100 per list page and
batch, 200 per search page and 10,000 results per query (a 400 beyond), 207 multi-status with
per-record StandardErrors, no partial upserts by email, 409 CONFLICT for an existing property.
"""

from __future__ import annotations

import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, overload

from starlette.requests import Request

from connectors.hubspot.sandbox.data import (
    DEFAULT_SEARCH_PROPS,
    Contact,
    iso,
    seed,
    standard_properties,
    to_ms,
)
from connectors.sandbox.world import World

Answer = tuple[int, dict[str, Any]]
Handler = Callable[[Request], Awaitable[Answer]]
VALID_PAIRS = {"string": {"text", "textarea"}, "number": {"number"},
               "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
               "bool": {"booleancheckbox"}, "datetime": {"date"}, "date": {"date"},
               "phone_number": {"phonenumber"}}  # fmt: skip
DATE_TYPES = {"datetime", "date"}


def error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error body; `context` and `errors` as given."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}  # fmt: skip


def standard_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """One error of a 207 answer: the client's `StandardError` requires context, links, errors."""
    return {"context": {}, "links": {}, "errors": [], **error(category, message, **extra)}


def batch_answer(
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    stamp: str,
    *,
    created: bool = False,
) -> Answer:
    """A batch answer (`BatchResponse…`): 207 with its errors, else 200 (201 for a create).

    The sandbox does a batch at once, so it starts and completes at `stamp`."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp,
                            "completedAt": stamp}  # fmt: skip
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return (201 if created else 200), body


def _as_ms(value: Any) -> int | None:
    text = str(value or "").strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def valid_value(definition: dict[str, Any], value: str) -> bool:
    kind = definition.get("type")
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "bool":
        return value in ("true", "false")
    if kind == "enumeration":
        options = {str(o.get("value")) for o in definition.get("options") or []}
        return all(v in options for v in value.split(";"))
    if kind in DATE_TYPES:
        return _as_ms(value) is not None
    return True


class Portal:
    """One HubSpot account's CRM data, seeded from the world."""

    def __init__(
        self, world: World, *, search_cap: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        contacts, self.events, forms = seed(world)
        self.contacts = {c.id: c for c in contacts}
        self.submissions = {"5f7a1c0e-0000-4000-8000-00000000f0e1": forms}
        self.properties = standard_properties()
        group = {"name": "contactinformation", "label": "Contact information",
                 "displayOrder": 0, "archived": False}  # fmt: skip
        self.groups: dict[str, dict[str, Any]] = {"contactinformation": group}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.search_cap, self.clock = search_cap, clock
        self.next_id = max((int(c) for c in self.contacts), default=100_000) + 1
        self._index: list[tuple[int, int]] | None = None  # (modified ms, id) of live contacts
        self._emails: dict[str, str] | None = None
        self.world, self._version = world, 0
        self._shown: tuple[tuple[int, int], dict[str, Contact]] | None = None

    def at_ms(self) -> int | None:
        """The world's clock in milliseconds, when it is set (see `World.clock`)."""
        return None if self.world.clock is None else to_ms(self.world.clock)

    def now_ms(self) -> int:
        at = self.at_ms()
        return int(self.clock() * 1000) if at is None else at

    def changed(self) -> None:
        self._index = self._emails = None
        self._version += 1

    def shown(self) -> dict[str, Contact]:
        """The contacts reads see: all of them, or as they stood at the world's clock."""
        at = self.at_ms()
        if at is None:
            return self.contacts
        key = (at, self._version)
        if self._shown is None or self._shown[0] != key:
            seen = {cid: c.as_of(at) for cid, c in self.contacts.items()}
            self._shown = (key, {cid: c for cid, c in seen.items() if c is not None})
            self._index = None
        return self._shown[1]

    def index(self) -> list[tuple[int, int]]:
        shown = self.shown()
        if self._index is None:
            self._index = sorted((c.updated_ms, int(c.id)) for c in shown.values() if c.live)
        return self._index

    def by_email(self, email: str) -> Contact | None:
        if self._emails is None:
            self._emails = {str(c.properties.get("email") or "").lower(): c.id
                            for c in self.contacts.values() if c.live}  # fmt: skip
        found = self._emails.get(email.lower())
        return self.contacts.get(found) if found else None

    def resolve(self, cid: str) -> Contact | None:
        """The contact an id points at: a merged-away id points at the record it merged into."""
        contact = self.contacts.get(cid)
        while contact is not None and contact.merged_into:
            contact = self.contacts.get(contact.merged_into)
        return contact

    def add_contact(self, properties: dict[str, str]) -> Contact:
        now = self.now_ms()
        contact = Contact(str(self.next_id), dict(properties), now, now)
        self.next_id += 1
        self.contacts[contact.id] = contact
        self.changed()
        return contact

    def set_properties(self, contact: Contact, properties: dict[str, Any]) -> None:
        for name, value in properties.items():
            if value in ("", None):
                contact.properties.pop(name, None)  # "" clears a value
            else:
                contact.properties[name] = str(value)
        contact.updated_ms = self.now_ms()
        self.changed()

    # -- reads ---------------------------------------------------------------------------------

    def list_page(self, limit: int, after: str | None, archived: bool, names: list[str]) -> Answer:
        if limit > 100:
            return 400, error("VALIDATION_ERROR", "limit must be at most 100")
        shown = self.shown()
        chosen = sorted(int(c.id) for c in shown.values()
                        if (c.archived_ms is not None if archived else c.live))  # fmt: skip
        start = bisect_left(chosen, int(after)) if after and after.isdigit() else 0
        page = chosen[start : start + limit]
        body: dict[str, Any] = {"results": [shown[str(i)].view(names) for i in page]}
        if start + limit < len(chosen):
            nxt = str(page[-1] + 1)
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return 200, body

    def batch_read(
        self, inputs: list[Any], names: list[str], by_email: bool, archived: bool
    ) -> Answer:
        started = iso(self.now_ms())
        results, missing = [], []
        for ref in (str((i or {}).get("id") or "") for i in inputs):
            contact = self._read_one(ref, by_email, archived)
            if contact is None:
                missing.append(ref)
            else:
                results.append(contact.view(names))
        message = "Could not get some CONTACT objects, they may be deleted or not exist."
        errors = [standard_error("OBJECT_NOT_FOUND", message, context={"ids": missing})]
        return batch_answer(results, errors if missing else [], started)

    def get_one(self, ref: str, by_email: bool, archived: bool, names: list[str]) -> Answer:
        """`GET /contacts/{id}` (or `{email}?idProperty=email`): one contact, or 404."""
        contact = self._read_one(ref, by_email, archived)
        if contact is None:
            return 404, error(
                "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
            )
        return 200, contact.view(names)

    def _read_one(self, ref: str, by_email: bool, archived: bool) -> Contact | None:
        found = self._find_one(ref, by_email, archived)
        return None if found is None else self.shown().get(found.id)

    def _find_one(self, ref: str, by_email: bool, archived: bool) -> Contact | None:
        if by_email and not archived:
            return self.by_email(ref)
        if by_email:
            wanted = ref.lower()
            return next(
                (
                    c
                    for c in self.contacts.values()
                    if c.archived_ms is not None
                    and str(c.properties.get("email") or "").lower() == wanted
                ),
                None,
            )
        contact = self.contacts.get(ref) if archived else self.resolve(ref)
        if contact is not None and (contact.archived_ms is not None) != archived:
            return None
        return contact

    # -- search --------------------------------------------------------------------------------

    def search(self, body: dict[str, Any]) -> Answer:
        groups = body.get("filterGroups") or []
        counts = [len(g.get("filters") or []) for g in groups]
        limit, after = int(body.get("limit") or 10), int(body.get("after") or 0)
        sorts = body.get("sorts") or []
        problem = _search_problem(len(groups), counts, len(sorts), limit)
        if problem:
            return 400, error("VALIDATION_ERROR", f"Invalid search request: {problem}.")
        if after >= self.search_cap:
            message = f"Search results are limited to {self.search_cap} total results."
            return 400, error("VALIDATION_ERROR", f"{message} after={after} is beyond.")
        found = self._candidates(groups, sorts)
        names = body.get("properties") or list(DEFAULT_SEARCH_PROPS)
        page = found[after : min(after + limit, self.search_cap)]
        answer: dict[str, Any] = {"total": len(found), "results": [c.view(names) for c in page]}
        if after + limit < len(found):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return 200, answer

    def _candidates(self, groups: list[dict[str, Any]], sorts: list[Any]) -> Sequence[Contact]:
        sort = sorts[0] if sorts else {"propertyName": "createdate"}
        if isinstance(sort, str):  # the client's `sorts: list[str]`: a property name, ascending
            sort = {"propertyName": sort}
        prop, descending = str(sort.get("propertyName")), sort.get("direction") == "DESCENDING"
        narrowed = self._by_index(groups)
        if narrowed is not None:
            pairs, rest = narrowed
            in_order = prop == "lastmodifieddate" and not descending
            if in_order and not rest:
                return _Contacts(self.shown(), pairs)  # read lazily: only one page is viewed
            found = [self.shown()[str(cid)] for _, cid in pairs]
            found = [c for c in found if all(self._matches(c, f) for f in rest)]
            if in_order:
                return found  # the index is in this order already
        else:
            pool = [c for c in self.shown().values() if c.live]
            found = [c for c in pool if not groups or any(self._group(c, g) for g in groups)]
        return sorted(
            found, key=lambda c: (self._key(prop, c.value(prop)), int(c.id)), reverse=descending
        )

    def _by_index(
        self, groups: list[dict[str, Any]]
    ) -> tuple[list[tuple[int, int]], list[dict[str, Any]]] | None:
        """The index entries of a single group's `lastmodifieddate` filter, and the group's
        other filters; None when the index does not apply."""
        if len(groups) != 1:
            return None
        filters = [f for f in groups[0].get("filters") or [] if isinstance(f, dict)]
        for n, f in enumerate(filters):
            ms = _as_ms(f.get("value"))
            if f.get("propertyName") != "lastmodifieddate" or ms is None:
                continue
            if f.get("operator") not in ("GTE", "GT", "EQ"):
                continue
            index = self.index()
            top = (ms, 1 << 62)
            gt = f["operator"] == "GT"
            low = bisect_right(index, top) if gt else bisect_left(index, (ms, -1))
            high = bisect_right(index, top) if f["operator"] == "EQ" else len(index)
            return index[low:high], filters[:n] + filters[n + 1 :]
        return None

    def _group(self, contact: Contact, group: dict[str, Any]) -> bool:
        return all(self._matches(contact, f) for f in group.get("filters") or [])

    def _key(self, prop: str, value: Any) -> Any:
        kind = (self.properties.get(prop) or {}).get("type")
        if kind in DATE_TYPES:
            return _as_ms(value) or 0
        if kind == "number":
            try:
                return float(value)
            except (TypeError, ValueError):
                return float("-inf")
        return str(value or "").lower()

    def _matches(self, contact: Contact, f: dict[str, Any]) -> bool:
        prop, op = str(f.get("propertyName")), str(f.get("operator"))
        raw = contact.value(prop)
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            return (raw not in (None, "")) == (op == "HAS_PROPERTY")
        if raw in (None, ""):
            return op == "NEQ"
        left = self._key(prop, raw)
        if op == "IN":
            return left in {self._key(prop, v) for v in f.get("values") or []}
        right = self._key(prop, f.get("value"))
        tests = {"EQ": left == right, "NEQ": left != right, "GT": left > right,
                 "GTE": left >= right, "LT": left < right, "LTE": left <= right}  # fmt: skip
        return tests.get(op, False)


class _Contacts(Sequence[Contact]):
    """Index entries read as contacts on access."""

    def __init__(self, contacts: dict[str, Contact], pairs: list[tuple[int, int]]) -> None:
        self.contacts, self.pairs = contacts, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, key: int) -> Contact: ...
    @overload
    def __getitem__(self, key: slice) -> list[Contact]: ...
    def __getitem__(self, key: int | slice) -> Contact | list[Contact]:
        if isinstance(key, slice):
            return [self.contacts[str(cid)] for _, cid in self.pairs[key]]
        return self.contacts[str(self.pairs[key][1])]


def _search_problem(groups: int, counts: list[int], sorts: int, limit: int) -> str | None:
    """What makes a search request invalid (shared/api/hubspot.md §2 limits), if anything."""
    if groups > 5:
        return "at most 5 filterGroups"
    if any(n > 6 for n in counts) or sum(counts) > 18:
        return "at most 6 filters per group and 18 in all"
    if sorts > 1:
        return "one sort only"
    if limit > 200:
        return "limit must be at most 200"
    return None

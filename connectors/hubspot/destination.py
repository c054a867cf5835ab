"""Scores into HubSpot contact properties; follow-up tasks for qualified leads.

- `prepare()` reads the mapped properties (one `batch/read` call) and creates the missing ones in
  the `property_group` group (number for scores, enumeration for the tier, string, bool,
  datetime), treating 409 as "someone made it meanwhile"; a property of a type that cannot hold
  the output is a ConfigError. HubSpot's own score properties (`hubspotscore`, `hs_*`) are
  refused: the score lives apart. A successful check is remembered for `property_check_hours`
  (`connectors.hubspot.checked`), so later pushes make no property calls; a write answered with
  "property does not exist" (or an unknown enumeration option) for a mapped property forgets it,
  and its records are retried after the next push has checked (and recreated) the properties.
- `write()` sends `batch/update` by record id (100 per call) and, for `mode: upsert`, `batch/upsert`
  by email for records without an id (contacts archived in HubSpot are not recreated). A 207
  multi-status answer is read per record: errors are matched by `objectWriteTraceId` (the lead
  id, sent with every input) or by the ids they name. A whole batch refused (upserts by email are
  never partial) is sent again record by record, so only the bad record is parked.
- `on_qualified()` creates a task associated with the contact (`batch/create` on tasks).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.base.contract import QualifiedItem, WriteItem, WriteOutcome, same_outcome
from connectors.base.settings import DestinationSettings
from connectors.hubspot.checked import PropertyCheck, fingerprint
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.source import default_token_file
from core.errors import ConfigError, RequestRejected
from core.http import RateBudget

# output → (type, fieldType) of the property created for it ([doc] properties guide pairs).
OUTPUT_TYPES = {
    "total": ("number", "number"),
    "fit": ("number", "number"),
    "engagement": ("number", "number"),
    "predictive": ("number", "number"),
    "tier": ("enumeration", "select"),
    "grade": ("string", "text"),
    "qualified": ("bool", "booleancheckbox"),
    "qualified_at": ("datetime", "date"),
    "reason": ("string", "textarea"),
}
HOLDS = {  # property type → the types of output it can hold
    "number": {"number"},
    "string": {"number", "string", "enumeration", "bool", "datetime"},
    "enumeration": {"enumeration", "bool"},
    "bool": {"bool"},
    "datetime": {"datetime"},
    "date": {"datetime"},
}
NATIVE = re.compile(r"^(hubspotscore|hs_.*)$")
RETRY_CATEGORIES = {"RATE_LIMITS", "LOCKED", "TIMEOUT", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"}
TASK_PRIORITIES = ("LOW", "MEDIUM", "HIGH")
STRING_LIMIT = 65_536  # characters in a single- or multi-line text property
TASK_TYPES = ("TODO", "CALL", "EMAIL")
Item = WriteItem | QualifiedItem


def hubspot_value(value: Any) -> str:
    """Every HubSpot property value is a string; "" clears one. A text property holds at most
    STRING_LIMIT characters, so a longer value is cut (ending in "…") rather than refused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    text = str(value)
    return text if len(text) <= STRING_LIMIT else text[: STRING_LIMIT - 1] + "…"


def vendor_reason(error: dict[str, Any] | str) -> str:
    """`CATEGORY: message` from a StandardError (or an error body's text)."""
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            return error[:500]
        if not isinstance(parsed, dict):
            return error[:500]
        error = parsed
    category = error.get("category") or error.get("status") or "error"
    details = [str(e.get("message")) for e in error.get("errors") or [] if isinstance(e, dict)]
    message = str(error.get("message") or "")
    return f"{category}: {'; '.join([message, *details]) if details else message}"[:1000]


class HubSpotDestination:
    """Writes one scoring model's outputs to HubSpot contacts (see the module docstring)."""

    def __init__(
        self,
        name: str,
        settings: HubSpotSettings,
        config: DestinationSettings,
        *,
        base_dir: Path = Path("."),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        budget: RateBudget | None = None,
    ) -> None:
        self.name, self.settings, self.config = name, settings, config
        self.batch_size = settings.batch_size
        self._clock = clock
        self._check_config()
        self.client = HubSpotClient(
            settings, where=f"destinations.{name}", label=f"hubspot destination {name!r}",
            token_file=default_token_file(settings, base_dir), transport=transport, sleep=sleep,
            clock=clock, budget=budget,
        )  # fmt: skip
        self.options: dict[str, list[dict[str, Any]]] = {}  # enumeration property → its options
        self.checked = PropertyCheck(
            base_dir / ".leadhub", self._fingerprint(), settings.property_check_hours, clock
        )

    def _fingerprint(self) -> str:
        """The portal and the properties checked: change either and the next push checks again."""
        s = self.settings
        return fingerprint({
            "base_url": s.base_url, "api_version": s.api_version, "account": s.account_key(),
            "group": s.property_group, "tier_options": s.tier_options,
            "properties": sorted([p, OUTPUT_TYPES[o][0]] for o, p in self.config.fields.items()),
        })  # fmt: skip

    def _check_config(self) -> None:
        for output, prop in self.config.fields.items():
            if NATIVE.match(prop):
                raise ConfigError(
                    f"destinations.{self.name}.fields.{output}: {prop!r} is a HubSpot-managed "
                    f"property; write to a property of its own (e.g. leadhub_{output})"
                )
        extra = (self.config.on_qualified.model_extra or {}) if self.config.on_qualified else {}
        for key, allowed in (("priority", TASK_PRIORITIES), ("task_type", TASK_TYPES)):
            if key in extra and extra[key] not in allowed:
                raise ConfigError(f"destinations.{self.name}.on_qualified.{key}: use one of "
                                  f"{', '.join(allowed)}, not {extra[key]!r}")  # fmt: skip

    # -- prepare -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check the mapped properties (unless a check holds); create the missing ones."""
        remembered = self.checked.recall()
        if remembered is not None:
            self.options = remembered
            return
        group_ready = False
        existing = self.client.read_properties(list(dict.fromkeys(self.config.fields.values())))
        for output, prop in self.config.fields.items():
            found = existing.get(prop)
            if found is None:
                if not group_ready:
                    self._ensure_group()
                    group_ready = True
                definition = self._definition(output, prop)
                created = self.client.create(self.client.paths.properties(), definition)
                found = definition if created else self.client.get_property(prop)
                if found is None:
                    raise ConfigError(f"destinations.{self.name}.fields.{output}: HubSpot said "
                                      f"{prop!r} exists but does not return it")  # fmt: skip
                existing[prop] = found
            self._check_property(output, prop, found)
        self.checked.remember(self.options)

    def _ensure_group(self) -> None:
        group = self.settings.property_group
        if not self.client.group_exists(group):
            body = {"name": group, "label": self.settings.property_group_label}
            self.client.create(f"{self.client.paths.properties()}/groups", body)

    def _definition(self, output: str, prop: str) -> dict[str, Any]:
        kind, field_type = OUTPUT_TYPES[output]
        body: dict[str, Any] = {
            "name": prop, "label": f"leadhub {output.replace('_', ' ')}", "type": kind,
            "fieldType": field_type, "groupName": self.settings.property_group,
            "description": f"Written by leadhub (model {self.config.model!r}).", "formField": False,
        }  # fmt: skip
        if kind == "number":
            body["numberDisplayHint"] = "unformatted"
        if kind == "enumeration":
            body["options"] = [_option(v, n) for n, v in enumerate(self.settings.tier_options, 1)]
        if kind == "bool":
            body["options"] = [_option("true", 1, "Yes"), _option("false", 2, "No")]
        return body

    def _check_property(self, output: str, prop: str, found: dict[str, Any]) -> None:
        kind = str(found.get("type") or "string")
        if OUTPUT_TYPES[output][0] not in HOLDS.get(kind, set()):
            raise ConfigError(
                f"destinations.{self.name}.fields.{output}: the HubSpot property {prop!r} is a "
                f"{kind}, which cannot hold the {output}; map it to another property"
            )
        if (found.get("modificationMetadata") or {}).get("readOnlyValue"):
            raise ConfigError(f"destinations.{self.name}.fields.{output}: {prop!r} is read-only")
        if kind == "enumeration" and OUTPUT_TYPES[output][0] == "enumeration":
            self.options[prop] = [o for o in found.get("options") or [] if isinstance(o, dict)]

    def _add_options(self, batch: Sequence[WriteItem]) -> None:
        """Add tier values the enumeration does not offer yet, before writing them."""
        for prop, options in self.options.items():
            known = {str(o.get("value")) for o in options}
            new = sorted({hubspot_value(i.values.get(prop)) for i in batch} - known - {""})
            if new:
                options.extend(_option(v, len(options) + n) for n, v in enumerate(new, 1))
                try:
                    self.client.call("PATCH", f"{self.client.paths.properties()}/{prop}",
                                     json={"options": options})  # fmt: skip
                except RequestRejected:
                    self.checked.forget()  # the property changed under us: check it again
                    raise
                self.checked.remember(self.options, keep_time=True)

    # -- write ---------------------------------------------------------------------------------

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        self._add_options(batch)
        outcomes: dict[int, WriteOutcome] = {}
        known = [i for i in batch if i.record_id]
        fresh = [i for i in batch if not i.record_id]
        if known:
            inputs = [_input(i.record_id, i.lead_id, _props(i.values)) for i in known]
            outcomes.update(self._send("update", inputs, known))
        if self.config.mode == "upsert":
            outcomes.update(self._upsert(fresh))
        else:
            outcomes.update(_rejected(fresh, "no HubSpot record id (mode: update)"))
        return [outcomes[i.lead_id] for i in batch]

    def _upsert(self, items: Sequence[WriteItem]) -> dict[int, WriteOutcome]:
        outcomes = _rejected([i for i in items if not i.email], "no email to upsert by")
        with_email = [i for i in items if i.email]
        archived = self._archived({str(i.email).lower() for i in with_email})
        gone = [i for i in with_email if str(i.email).lower() in archived]
        reason = "the contact is archived (deleted) in HubSpot; leadhub does not recreate it"
        outcomes.update(_rejected(gone, reason))
        ready = [i for i in with_email if str(i.email).lower() not in archived]
        inputs = [
            {**_input(str(i.email).lower(), i.lead_id, _props(i.values)), "idProperty": "email"}
            for i in ready
        ]
        for item, sent in zip(ready, inputs, strict=True):
            sent["properties"] = {**_props(item.lead_fields, skip_empty=True), **sent["properties"]}
        if ready:
            outcomes.update(self._send("upsert", inputs, ready))
        return outcomes

    def _archived(self, emails: set[str]) -> set[str]:
        if not emails or not self.settings.protect_archived:
            return set()
        found = self.client.read_contacts(
            sorted(emails), ["email"], id_property="email", archived=True
        )
        return {str((r.get("properties") or {}).get("email") or "").lower() for r in found}

    def _send(
        self, kind: str, inputs: list[dict[str, Any]], items: Sequence[Item]
    ) -> dict[int, WriteOutcome]:
        """One batch call; a whole batch refused is sent again record by record."""
        try:
            body = self.client.batch_write(kind, inputs)
        except RequestRejected as exc:
            if self._forget_if_stale([_parsed(exc.body)]):
                # the whole batch fails alike: no use sending it record by record
                reason = f"{vendor_reason(exc.body)} (properties are checked again next push)"
                return same_outcome(items, "retry", reason)
            if len(items) == 1:
                return {
                    items[0].lead_id: WriteOutcome(
                        items[0].lead_id, "rejected", reason=vendor_reason(exc.body)
                    )
                }
            outcomes: dict[int, WriteOutcome] = {}
            for one, item in zip(inputs, items, strict=True):
                outcomes.update(self._send(kind, [one], [item]))
            return outcomes
        answer = body if isinstance(body, dict) else {}
        self._forget_if_stale([e for e in answer.get("errors") or [] if isinstance(e, dict)])
        return read_batch(items, inputs, answer, stale=self._names_mine)

    def _names_mine(self, error: dict[str, Any]) -> bool:
        """Whether an error says a mapped property is gone (or lacks the option written)."""
        return bool(stale_properties(error) & set(self.config.fields.values()))

    def _forget_if_stale(self, errors: Sequence[dict[str, Any]]) -> bool:
        """Forget the property check when an error names a mapped property as gone, so that
        the next push checks (and recreates) the properties; True when one did."""
        if any(self._names_mine(e) for e in errors):
            self.checked.forget()
            return True
        return False

    # -- on_qualified --------------------------------------------------------------------------

    def on_qualified(self, batch: Sequence[QualifiedItem]) -> list[WriteOutcome]:
        """Create one task per item, associated with its contact."""
        outcomes = _rejected(
            [i for i in batch if not i.record_id], "no HubSpot contact to attach the task to"
        )
        ready = [i for i in batch if i.record_id]
        if ready:
            inputs = [self._task(i) for i in ready]
            outcomes.update(self._send("create", inputs, ready))
        return [outcomes[i.lead_id] for i in batch]

    def _task(self, item: QualifiedItem) -> dict[str, Any]:
        extra = (self.config.on_qualified.model_extra or {}) if self.config.on_qualified else {}
        due = item.due_at or datetime.fromtimestamp(self._clock(), tz=UTC)
        association = {
            "associationCategory": "HUBSPOT_DEFINED",
            "associationTypeId": self.settings.task_association_type_id,
        }
        return {
            "properties": {
                "hs_timestamp": due.astimezone(UTC).isoformat(),
                "hs_task_subject": item.subject,
                "hs_task_body": item.body,
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": extra.get("priority", "HIGH"),
                "hs_task_type": extra.get("task_type", "TODO"),
            },
            "associations": [{"to": {"id": item.record_id}, "types": [association]}],
            "objectWriteTraceId": str(item.lead_id),
        }

    def close(self) -> None:
        self.client.close()


def _option(value: str, order: int, label: str | None = None) -> dict[str, Any]:
    return {"label": label or value, "value": value, "hidden": False, "displayOrder": order}


def _input(ref: Any, lead_id: int, properties: dict[str, str]) -> dict[str, Any]:
    """A batch input; the lead id as `objectWriteTraceId` lets 207 errors name their record."""
    return {"id": ref, "properties": properties, "objectWriteTraceId": str(lead_id)}


def _rejected(items: Sequence[Item], reason: str) -> dict[int, WriteOutcome]:
    return same_outcome(items, "rejected", reason)


def _props(values: Any, *, skip_empty: bool = False) -> dict[str, str]:
    props = {str(k): hubspot_value(v) for k, v in dict(values).items()}
    return {k: v for k, v in props.items() if v != ""} if skip_empty else props


def _parsed(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def stale_properties(error: dict[str, Any]) -> set[str]:
    """Properties a StandardError says do not exist, or lack the option written to them.

    HubSpot names them per sub-error: `{"code":"PROPERTY_DOESNT_EXIST","context":
    {"propertyName":["leadhub_score"]}}` (shared/api/hubspot.md §5, generic error body).
    """
    names: set[str] = set()
    for sub in (e for e in error.get("errors") or [] if isinstance(e, dict)):
        code, message = str(sub.get("code") or "").upper(), str(sub.get("message") or "").lower()
        gone = code == "PROPERTY_DOESNT_EXIST" or "does not exist" in message
        option = code.startswith("INVALID_") and ("OPTION" in code or "ENUMERATION" in code)
        if gone or option:
            context = sub.get("context") or {}
            named = context.get("propertyName") if isinstance(context, dict) else None
            names.update(str(n) for n in named or [] if n)
    return names


def read_batch(
    items: Sequence[Item],
    inputs: Sequence[dict[str, Any]],
    body: dict[str, Any],
    *,
    stale: Callable[[dict[str, Any]], bool] = lambda error: False,
) -> dict[int, WriteOutcome]:
    """Per-record outcomes of a 200 or 207 batch answer, matched by trace id, then by id/email.

    Records whose error is `stale` (it names a mapped property that is gone) are retried.
    """
    results = [r for r in body.get("results") or [] if isinstance(r, dict)]
    by_ref: dict[str, dict[str, Any]] = {}
    for r in results:
        by_ref[f"id:{r.get('id')}"] = r
        email = str((r.get("properties") or {}).get("email") or "").lower()
        if email:
            by_ref[f"id:{email}"] = r
        if r.get("objectWriteTraceId") is not None:
            by_ref[f"trace:{r['objectWriteTraceId']}"] = r
    refs = {
        item.lead_id: (f"trace:{item.lead_id}", f"id:{str(sent.get('id') or '').lower()}")
        for item, sent in zip(items, inputs, strict=True)
    }
    ours = {r for pair in refs.values() for r in pair}
    blamed: dict[str, dict[str, Any]] = {}
    unmatched: list[dict[str, Any]] = []  # errors that name no input (or nothing at all)
    for err in (e for e in body.get("errors") or [] if isinstance(e, dict)):
        context = err.get("context") or {}
        named = [f"trace:{t}" for t in context.get("objectWriteTraceId") or []]
        named += [
            f"id:{str(i).lower()}"
            for i in [*(context.get("ids") or []), *(context.get("id") or [])]
        ]
        for ref in named:
            blamed[ref] = err
        if not ours.intersection(named):
            unmatched.append(err)
    outcomes: dict[int, WriteOutcome] = {}
    for item in items:
        error = next((blamed[r] for r in refs[item.lead_id] if r in blamed), None)
        result = next((by_ref[r] for r in refs[item.lead_id] if r in by_ref), None)
        if error is None and result is None and unmatched:
            # Neither a result nor an error of its own, while an error went unclaimed: that
            # error may well be this record's, so it is no success.
            error = unmatched[0]
        outcomes[item.lead_id] = _outcome(item.lead_id, error, result, stale)
    return outcomes


def _outcome(
    lead_id: int,
    error: dict[str, Any] | None,
    result: dict[str, Any] | None,
    stale: Callable[[dict[str, Any]], bool],
) -> WriteOutcome:
    if error is not None:
        if stale(error):
            reason = f"{vendor_reason(error)} (properties are checked again next push)"
            return WriteOutcome(lead_id, "retry", reason=reason)
        status: Literal["retry", "rejected"] = (
            "retry" if str(error.get("category")) in RETRY_CATEGORIES else "rejected"
        )
        return WriteOutcome(lead_id, status, reason=vendor_reason(error))
    return WriteOutcome(
        lead_id, "ok", record_id=str(result["id"]) if result and result.get("id") else None
    )

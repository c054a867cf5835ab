"""The Salesforce destination: scores onto Leads, new Leads in upsert mode, follow-up Tasks.

- `prepare()` describes Lead once and fails with a message listing the custom fields a Salesforce
  admin must create (or grant edit access to) before anything is written.
- `write()` sends sObject Collections of up to 200 records (`PATCH /composite/sobjects` for known
  Leads, `POST` for new ones, `allOrNone: false`) and reads each record's result in order:
  per-record errors carry `statusCode`, request errors `errorCode`. A converted Lead refuses
  updates (`CANNOT_UPDATE_CONVERTED_LEAD`): it is parked quietly with that reason. More records
  than `bulk_threshold` go through one Bulk API 2.0 ingest job instead.
- In `upsert` mode a lead without a Salesforce id becomes a new Lead; `LastName` and `Company`
  are required, so `default_last_name` / `default_company` stand in when the lead has none. A Lead
  is never made of those placeholders alone: a lead with no email and no `lead_fields` value is
  rejected with the reason.
- A lead whose Lead a pull saw deleted is never created again. One `queryAll` asks Salesforce
  what became of those Leads: one merged away (`MasterRecordId`, followed across merges) is
  written to the surviving Lead, whose id becomes the lead's; one deleted (or purged) is parked
  with a reason the operator sees in `leadhub outbox --parked`.
- `on_qualified()` creates one Task per qualified lead (`WhoId` = the Lead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.base.contract import QualifiedItem, WriteItem, WriteOutcome, addressable, batched
from connectors.base.settings import DestinationSettings
from connectors.salesforce.bulk import BulkIngest, RowResult
from connectors.salesforce.client import SalesforceClient, describe_errors
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.source import ID_CHUNK, soql_string
from core.errors import ConfigError, RequestRejected

log = logging.getLogger("leadhub.salesforce")
COLLECTION_SIZE = 200
MERGE_HOPS = 5  # a Lead merged into one that was merged again: follow a few steps, not forever
CONVERTED = "CANNOT_UPDATE_CONVERTED_LEAD"
CONTACT_PREFIX = "003"  # the key prefix of every Contact id
# Per-record codes that may pass on a later try (a locked row, a busy org).
RETRY_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE",
     "ALL_OR_NONE_OPERATION_ROLLED_BACK", "TXN_SECURITY_METERING_ERROR"}
)  # fmt: skip
# The field type to ask an admin for, per output.
FIELD_TYPES = {
    "total": "Number(3, 0)", "fit": "Number(3, 0)", "engagement": "Number(3, 0)",
    "predictive": "Number(3, 2)", "tier": "Text(40)", "grade": "Text(10)",
    "qualified": "Checkbox", "qualified_at": "Date/Time", "reason": "Text(255)",
}  # fmt: skip
Status = Literal["ok", "retry", "rejected"]
Operation = Literal["update", "insert"]


def _record_error(errors: Any) -> tuple[Status, str]:
    """The outcome of a failed record from its `errors` list (`statusCode`, `message`, `fields`)."""
    entries = [e for e in errors or [] if isinstance(e, dict)] or [{"message": "no reason given"}]
    codes = [str(e.get("statusCode") or e.get("errorCode") or "") for e in entries]
    parts = []
    for entry, code in zip(entries, codes, strict=True):
        fields = ", ".join(str(f) for f in entry.get("fields") or [])
        text = f"{code}: {entry.get('message') or ''}".strip(": ")
        parts.append(f"{text} (fields: {fields})" if fields else text)
    reason = "; ".join(parts)
    if CONVERTED in codes:
        return "rejected", (
            f"the Lead was converted in Salesforce, and converted Leads cannot be updated "
            f"({CONVERTED})"
        )
    if codes and all(c in RETRY_CODES for c in codes):
        return "retry", reason
    return "rejected", reason


def _survivor(rows: Mapping[str, Mapping[str, Any]], lead_id: str) -> str | None:
    """The live Lead that `lead_id` is now (itself if restored, else its merge's survivor)."""
    for _ in range(MERGE_HOPS + 1):
        row = rows.get(lead_id)
        if row is None:  # purged from the Recycle Bin, or never seen
            return None
        if not row.get("IsDeleted"):
            return lead_id
        if not row.get("MasterRecordId"):
            return None
        lead_id = str(row["MasterRecordId"])
    return None


def _bulk_error(text: str) -> tuple[Status, str]:
    """A Bulk `sf__Error` (`CODE:message:fields`) as a record error."""
    code, _, rest = text.partition(":")
    message, _, fields = rest.rpartition(":") if rest.count(":") else (rest, "", "")
    entry = {"statusCode": code.strip(), "message": message.strip() or rest.strip(),
             "fields": [f for f in fields.strip("- ").split(",") if f]}  # fmt: skip
    return _record_error([entry])


class SalesforceDestination:
    """Writes the mapped outputs onto Leads.

    Parameters:
        name: the destination's name in the hub file.
        settings: the connector's own keys; config: the write-back keys.
        base_dir: the hub file's folder (token file, key path).
        transport, sleep, clock: for tests.
    """

    def __init__(
        self,
        name: str,
        settings: SalesforceSettings,
        config: DestinationSettings,
        *,
        base_dir: Path = Path("."),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.settings, self.config = name, settings, config
        self.where = f"destinations.{name}"
        self.batch_size = settings.push_batch_size
        self.client = SalesforceClient(
            f"salesforce destination {name!r}", self.where, settings, base_dir=base_dir,
            transport=transport, sleep=sleep, clock=clock,
        )  # fmt: skip
        self.bulk = BulkIngest(
            self.client, "Lead", poll_seconds=settings.bulk_poll_seconds,
            timeout_seconds=settings.bulk_timeout_seconds, sleep=sleep,
        )  # fmt: skip
        self._clock = clock
        self.field_map = self._field_map()  # key of WriteItem.values → Lead field
        self.lengths: dict[str, int] = {}  # text field → its length, from describe
        self._prepared = False

    def _field_map(self) -> dict[str, str]:
        """Outputs go to the block's `fields` when given, else to `score_fields`."""
        if "fields" in self.config.model_fields_set:
            return {crm: crm for crm in self.config.fields.values()}
        return {
            self.config.fields[output]: field
            for output, field in self.settings.score_fields.items()
            if output in self.config.fields
        }

    def _outputs(self) -> dict[str, str]:
        """Lead field → the output it holds (for messages)."""
        written = {crm: output for output, crm in self.config.fields.items()}
        return {field: written.get(key, key) for key, field in self.field_map.items()}

    # -- prepare ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Describe Lead; raise ConfigError naming every field an admin must add or open up."""
        if self._prepared:
            return
        try:
            body = self.client.call("GET", "sobjects/Lead/describe")
        except RequestRejected as exc:
            raise ConfigError(f"{self.where}: could not describe the Lead object: {exc}") from exc
        fields = {str(f.get("name")): f for f in (body or {}).get("fields") or []
                  if isinstance(f, dict)}  # fmt: skip
        outputs = self._outputs()
        missing, locked = [], []
        for field in self.field_map.values():
            found = fields.get(field)
            if found is None:
                kind = FIELD_TYPES.get(outputs.get(field, ""), "Text(255)")
                missing.append(f"{field} ({kind}, for {outputs.get(field, field)})")
            elif not found.get("updateable") or (
                self.config.mode == "upsert" and found.get("createable") is False
            ):
                locked.append(field)
            elif found.get("type") in ("string", "textarea") and found.get("length"):
                self.lengths[field] = int(found["length"])
        if self.config.mode == "upsert":
            for field in self.config.lead_fields.values():
                if field not in fields:
                    missing.append(f"{field} (named in `lead_fields`)")
        if missing or locked:
            parts = []
            if missing:
                parts.append(
                    "the Lead object has no field " + ", ".join(missing) + ". A Salesforce "
                    "admin must create them (Setup → Object Manager → Lead → Fields & "
                    "Relationships → New) and give the integration user edit access"
                )
            if locked:
                parts.append(
                    "the integration user may not edit " + ", ".join(locked) + " (grant Edit "
                    "in its permission set's field-level security)"
                )
            raise ConfigError(
                f"{self.where}: " + "; and ".join(parts) + "; or map the outputs to other "
                f"fields with `{self.where}.fields`"
            )
        self._prepared = True

    # -- write -----------------------------------------------------------------------------------

    def _lead_values(self, item: WriteItem) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in item.values.items():
            field = self.field_map.get(key)
            if field is None:
                continue
            limit = self.lengths.get(field)
            if isinstance(value, str) and limit and len(value) > limit:
                value = value[: limit - 1] + "…"
            values[field] = value
        return values

    def _new_lead(self, item: WriteItem) -> dict[str, Any] | None:
        """The new Lead's values; None when it would hold only the placeholders."""
        lead: dict[str, Any] = {k: v for k, v in item.lead_fields.items() if v not in (None, "")}
        if item.email and not any(k.lower() == "email" for k in lead):
            lead["Email"] = item.email
        if not lead:
            return None
        lead.setdefault("LastName", self.settings.default_last_name)
        lead.setdefault("Company", self.settings.default_company)
        return {**lead, **self._lead_values(item)}

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        """Update known Leads, create new ones (upsert), by collections or one Bulk job."""
        outcomes: dict[int, WriteOutcome] = {}
        updates: list[tuple[WriteItem, dict[str, Any]]] = []
        creates: list[tuple[WriteItem, dict[str, Any]]] = []
        gone: list[WriteItem] = []
        for item in batch:
            new = None if item.record_id or item.deleted_ids else self._new_lead(item)
            if item.record_id and item.record_id.startswith(CONTACT_PREFIX):
                reason = f"{item.record_id} is a Contact id; scores are written to Leads only"
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", item.record_id,
                                                      reason)  # fmt: skip
            elif item.record_id:
                updates.append((item, {"Id": item.record_id, **self._lead_values(item)}))
            elif item.deleted_ids:  # never created again; a merge is followed
                gone.append(item)
            elif self.config.mode != "upsert":
                reason = "the lead has no Salesforce Lead id (mode update only updates Leads)"
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
            elif new is None:
                reason = (
                    "nothing to create a Salesforce Lead from: the lead has no email and no value "
                    f"for `{self.where}.lead_fields`, so the Lead would hold only the placeholders "
                    "`default_last_name` and `default_company`"
                )
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
            else:
                creates.append((item, new))
        if gone:
            survivors, parked = self._follow_merges(gone)
            outcomes.update(parked)
            updates += [(i, {"Id": lead_id, **self._lead_values(i)}) for i, lead_id in survivors]
        if len(updates) + len(creates) > self.settings.bulk_threshold:
            send = self._bulk
        else:
            send = self._collections
        if updates:
            outcomes.update(send("update", updates))
        if creates:
            outcomes.update(send("insert", creates))
        return [outcomes[i.lead_id] for i in batch]

    def _follow_merges(
        self, items: Sequence[WriteItem]
    ) -> tuple[list[tuple[WriteItem, str]], dict[int, WriteOutcome]]:
        """What became of the deleted Leads of `items`, asked of Salesforce (`queryAll`): the
        surviving Lead of each merged one, and a parked outcome for each one that is gone."""
        rows: dict[str, dict[str, Any]] = {}
        wanted = {i for item in items for i in item.deleted_ids}
        for _ in range(MERGE_HOPS):
            wanted -= rows.keys()
            if not wanted:
                break
            for chunk in batched(sorted(wanted), ID_CHUNK):
                listed = ", ".join(soql_string(i) for i in chunk)
                soql = f"SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id IN ({listed})"
                for page in self.client.query(soql, all_rows=True):
                    rows.update({str(r.get("Id")): r for r in page})
            wanted = {str(r["MasterRecordId"]) for r in rows.values()
                      if r.get("IsDeleted") and r.get("MasterRecordId")}  # fmt: skip
        survivors: list[tuple[WriteItem, str]] = []
        parked: dict[int, WriteOutcome] = {}
        for item in items:
            found = next((s for i in item.deleted_ids if (s := _survivor(rows, i))), None)
            if found:
                log.info("%s: Lead %s was merged into %s; writing there", self.where,
                         ", ".join(item.deleted_ids), found)  # fmt: skip
                survivors.append((item, found))
                continue
            ids = ", ".join(item.deleted_ids)
            reason = (
                f"the Salesforce Lead {ids} was deleted in Salesforce, and leadhub does not create "
                "it again; restore it from the Recycle Bin and run `leadhub push --retry-parked` "
                "to have it updated"
            )
            parked[item.lead_id] = WriteOutcome(item.lead_id, "rejected", reason=reason)
        return survivors, parked

    def _collections(
        self,
        operation: Operation,
        rows: Sequence[tuple[WriteItem, dict[str, Any]]],
    ) -> dict[int, WriteOutcome]:
        method = "PATCH" if operation == "update" else "POST"
        outcomes: dict[int, WriteOutcome] = {}
        for chunk in batched(rows, COLLECTION_SIZE):
            records = [self._sobject("Lead", values) for _, values in chunk]
            items = [item for item, _ in chunk]
            outcomes.update(self._send_collection(method, records, items))
        return outcomes

    @staticmethod
    def _sobject(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"attributes": {"type": kind}}
        for key, value in values.items():
            record["id" if key == "Id" else key] = value
        return record

    def _send_collection(
        self,
        method: str,
        records: list[dict[str, Any]],
        items: Sequence[WriteItem | QualifiedItem],
    ) -> dict[int, WriteOutcome]:
        """One collections call; one outcome per item from the results, which keep its order."""
        body = {"allOrNone": False, "records": records}
        try:
            results = self.client.call(method, "composite/sobjects", json=body)
        except RequestRejected as exc:  # the request itself (`errorCode`): try again later
            reason = f"Salesforce refused the whole request: {describe_errors(exc.body)}"
            return {i.lead_id: WriteOutcome(i.lead_id, "retry", reason=reason) for i in items}
        if not isinstance(results, list) or len(results) != len(items):
            reason = "Salesforce answered with a result list that does not match the records sent"
            return {i.lead_id: WriteOutcome(i.lead_id, "retry", reason=reason) for i in items}
        outcomes = {}
        for item, result in zip(items, results, strict=True):
            result = result if isinstance(result, dict) else {}
            if result.get("success"):
                record_id = result.get("id") or item.record_id
                outcomes[item.lead_id] = WriteOutcome(item.lead_id, "ok", record_id)
                continue
            status, reason = _record_error(result.get("errors"))
            self._log_refusal(item.record_id, status, reason)
            outcomes[item.lead_id] = WriteOutcome(item.lead_id, status, item.record_id, reason)
        return outcomes

    def _bulk(
        self,
        operation: Operation,
        rows: Sequence[tuple[WriteItem, dict[str, Any]]],
    ) -> dict[int, WriteOutcome]:
        columns = list(dict.fromkeys(k for _, values in rows for k in values))
        if operation == "update":
            columns = ["Id", *(c for c in columns if c != "Id")]
        results = self.bulk.run(operation, columns, [values for _, values in rows])
        outcomes = {}
        for (item, _), result in zip(rows, results, strict=True):
            outcomes[item.lead_id] = self._bulk_outcome(item, result)
        return outcomes

    def _bulk_outcome(self, item: WriteItem, result: RowResult) -> WriteOutcome:
        if result.status == "ok":
            return WriteOutcome(item.lead_id, "ok", result.record_id or item.record_id)
        if result.status == "retry":
            return WriteOutcome(item.lead_id, "retry", item.record_id, result.error)
        status, reason = _bulk_error(result.error)
        self._log_refusal(item.record_id, status, reason)
        return WriteOutcome(item.lead_id, status, item.record_id, reason)

    def _log_refusal(self, record_id: str | None, status: Status, reason: str) -> None:
        if CONVERTED in reason:  # expected: sales converted the lead; nothing to fix
            log.debug("%s: Lead %s is converted; skipped", self.where, record_id)
        else:
            log.info("%s: Lead %s %s: %s", self.where, record_id or "(new)", status, reason)

    # -- on_qualified ----------------------------------------------------------------------------

    def on_qualified(self, batch: Sequence[QualifiedItem]) -> list[WriteOutcome]:
        """Create one Task per qualified lead, on its Lead, in collections of up to 200."""
        outcomes: dict[int, WriteOutcome] = {}
        no_lead = "no Salesforce Lead to attach the task to"
        ready = addressable(batch, lambda i: i.record_id, no_lead, outcomes)
        for chunk in batched(ready, COLLECTION_SIZE):
            records = [self._task(i) for i in chunk]
            outcomes.update(self._send_collection("POST", records, chunk))
        # A task's id is not the Lead's: report the Lead as the record acted on.
        return [
            WriteOutcome(o.lead_id, o.status, item.record_id, o.reason)
            if (o := outcomes[item.lead_id]).status == "ok"
            else o
            for item in batch
        ]

    def _task(self, item: QualifiedItem) -> dict[str, Any]:
        extra = (self.config.on_qualified.model_extra or {}) if self.config.on_qualified else {}
        due = item.due_at or datetime.fromtimestamp(self._clock(), tz=UTC)
        task = {
            "WhoId": item.record_id,
            "Subject": item.subject[:255],
            "Description": item.body[:32000],
            "ActivityDate": due.astimezone(UTC).date().isoformat(),
            "Status": extra.get("status", self.settings.task_status),
            "Priority": extra.get("priority", self.settings.task_priority),
        }
        if extra.get("type"):
            task["Type"] = extra["type"]
        return self._sobject("Task", task)

    def close(self) -> None:
        self.client.close()

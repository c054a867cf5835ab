"""The Salesforce source: Leads (and Contacts), their outcomes, campaign members, tasks, events.

Every stream is one SOQL query over `/query` (or `/queryAll`, which adds deleted rows), ordered by
`SystemModstamp, Id` and resumed after the last row read:

    WHERE SystemModstamp > :ts OR (SystemModstamp = :ts AND Id > :id)
    ORDER BY SystemModstamp, Id

so rows that share the saved timestamp are neither skipped nor read twice. The cursor
`{"modstamp": ts, "id": id}` is saved with every page, so a crash re-reads at most one page.

- `leads` / `contacts`: the people, from `queryAll` (a deleted or merged row marks the lead deleted
  in this source). With `skip_own_writes`, Lead rows whose last change was made by the user this
  block logs in as (`LastModifiedById`: leadhub's own score writes) are not read again. A
  converted Lead also gives its outcome; its Opportunity (`IsWon`, `Amount`,
  `CloseDate`) is looked up for the page's converted Leads in one query.
- `opportunities`: Opportunities changed since the cursor, joined to the Leads converted into them,
  so a deal closed after its Lead was last read still turns the outcome into won or lost.
- `campaign_members`: webinar registrations and attendances, form and other campaign responses
  (keyed on `HasResponded`; the Campaign's `Type` decides which).
- `tasks`: completed Tasks (calls, and other completed tasks) on a Lead or Contact.
- `events`: meetings, from `queryAll` (a deleted Event is a cancelled meeting).

Each query is checked against `max_uri_chars` when the source is built, so a long
`custom_fields` list is refused with a message instead of failing with 414 mid-pull.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from connectors.base.contract import Cursor, Item, Page, Stream, batched
from connectors.base.paging import Bookmark, Countdown, bookmarked, json_path
from connectors.salesforce import mapping
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.settings import SalesforceSettings
from core.errors import ConfigError

ID_CHUNK = 300  # ids per `IN (…)` lookup: about 8,500 characters of URL
_LONGEST_ID = "0" * 18
_LONGEST_TIME = "2000-01-01T00:00:00.000Z"
Convert = Callable[[list[dict[str, Any]]], list[Item]]


def soql_datetime(value: Any) -> str:
    """A SOQL dateTime literal (unquoted, UTC) of a Salesforce timestamp or a datetime."""
    when = value
    if isinstance(value, str):
        text = value.strip()
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if not isinstance(when, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{when.microsecond // 1000:03d}Z" if when.microsecond else f"{text}Z"


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ObjectStream:
    """One object read incrementally on `SystemModstamp` with an `Id` tie-breaker.

    The query is sorted by the replication key, so every page saves the bookmark.

    Parameters:
        name: the stream's name (its cursor's key in the store).
        sobject, fields: what is selected.
        client: the org's client.
        convert: rows of one page → records (may run lookups).
        where: conditions ANDed with the cursor's.
        all_rows: `queryAll` (deleted and archived rows too).
        start: the lower bound of the first read.
        skip_user: the user whose changes are not read (leadhub's own writes), asked at each read.
    """

    replication_key = ("SystemModstamp", "Id")

    def __init__(
        self,
        name: str,
        sobject: str,
        fields: Sequence[str],
        client: SalesforceClient,
        convert: Convert,
        *,
        where: Sequence[str] = (),
        all_rows: bool = False,
        start: datetime | None = None,
        skip_user: Callable[[], str | None] | None = None,
    ) -> None:
        self.name, self.sobject, self.fields = name, sobject, list(dict.fromkeys(fields))
        self.client, self.convert = client, convert
        self.where, self.all_rows, self.start = list(where), all_rows, start
        self.skip_user = skip_user

    def soql(self, cursor: Cursor | None, skip_user: str | None = None) -> str:
        conditions = [f"({w})" for w in self.where]
        if skip_user:
            conditions.append(f"LastModifiedById != {soql_string(skip_user)}")
        mark, last = (cursor or {}).get("modstamp"), (cursor or {}).get("id")
        if mark and last:
            ts = soql_datetime(mark)
            conditions.append(
                f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > {soql_string(last)}))"
            )
        elif self.start is not None:
            conditions.append(f"SystemModstamp >= {soql_datetime(self.start)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return (
            f"SELECT {', '.join(self.fields)} FROM {self.sobject}{where} "
            "ORDER BY SystemModstamp ASC, Id ASC"
        )

    def longest_url(self) -> int:
        """The URL length of this stream's query with a cursor (its longest form)."""
        soql = self.soql({"modstamp": _LONGEST_TIME, "id": _LONGEST_ID},
                         _LONGEST_ID if self.skip_user else None)  # fmt: skip
        return self.client.query_url_length(soql, all_rows=self.all_rows)

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        mark: Bookmark[tuple[str, str]] = Bookmark(None, ascending=True)
        skip = self.skip_user() if self.skip_user else None
        countdown = Countdown(json_path("totalSize"))  # the query's rows, whatever the page

        def batches() -> Iterator[list[Item]]:
            soql = self.soql(cursor, skip)
            for rows in self.client.query(soql, all_rows=self.all_rows, countdown=countdown):
                marked = [r for r in rows if r.get("SystemModstamp") and r.get("Id")]
                if not marked:
                    continue
                last = marked[-1]
                mark.seen((soql_datetime(last["SystemModstamp"]), str(last["Id"])))
                yield self.convert(rows)

        def saved() -> Cursor | None:
            return {"modstamp": mark.value[0], "id": mark.value[1]} if mark.value else None

        yield from bookmarked(batches(), saved, every_page=True, left=lambda: countdown.left)


class SalesforceSource:
    """The streams of one org, as configured.

    Parameters:
        name: the source's name in the hub file.
        settings: the validated block.
        base_dir: the hub file's folder (token file, key path).
        transport, sleep, clock: for tests.
    """

    def __init__(
        self,
        name: str,
        settings: SalesforceSettings,
        *,
        base_dir: Path = Path("."),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.settings = name, settings
        self.where = f"sources.{name}"
        self.client = SalesforceClient(
            f"salesforce source {name!r}", self.where, settings, base_dir=base_dir,
            limit_share=settings.limit_share, transport=transport, sleep=sleep, clock=clock,
        )  # fmt: skip
        self._campaigns: dict[str, dict[str, Any] | None] = {}  # id → Campaign (None: no such)
        self._streams = self._build()
        self._check_lengths()

    def streams(self) -> Sequence[Stream]:
        self._campaigns.clear()  # lookups are cached within one sync, not across syncs
        return list(self._streams)

    def _own_user(self) -> str | None:
        """The user this block's token acts as: its writes are leadhub's own."""
        return self.client.auth.session().user_id

    def _build(self) -> list[ObjectStream]:
        s, client = self.settings, self.client
        start = s.start_date
        streams = []
        for sobject in s.objects:
            base = mapping.LEAD_FIELDS if sobject == "Lead" else mapping.CONTACT_FIELDS
            streams.append(
                ObjectStream(
                    f"{sobject.lower()}s",
                    sobject,
                    [*base, *s.custom_fields],
                    client,
                    self._people(sobject),
                    all_rows=True,
                    start=start,
                    skip_user=self._own_user if s.skip_own_writes and sobject == "Lead" else None,
                )
            )
        if s.outcomes and "Lead" in s.objects:
            streams.append(
                ObjectStream(
                    "opportunities",
                    "Opportunity",
                    mapping.OPPORTUNITY_FIELDS,
                    client,
                    self._opportunities,
                    start=start,
                )
            )
        if s.campaign_members:
            streams.append(
                ObjectStream(
                    "campaign_members",
                    "CampaignMember",
                    mapping.CAMPAIGN_MEMBER_FIELDS,
                    client,
                    self._campaign_members,
                    start=start,
                )
            )
        if s.tasks_and_events:
            streams.append(
                ObjectStream(
                    "tasks",
                    "Task",
                    mapping.TASK_FIELDS,
                    client,
                    self._tasks,
                    where=["IsClosed = true", "WhoId != null"],
                    start=start,
                )
            )
            streams.append(
                ObjectStream(
                    "events",
                    "Event",
                    mapping.EVENT_FIELDS,
                    client,
                    self._events,
                    where=["WhoId != null"],
                    all_rows=True,
                    start=start,
                )
            )
        return streams

    def _check_lengths(self) -> None:
        # The instance host is not known before the first token; allow a long My Domain host.
        room = self.settings.max_uri_chars - len("https://") - 80
        for stream in self._streams:
            length = stream.longest_url()
            if length > room:
                raise ConfigError(
                    f"{self.where}.custom_fields: the {stream.sobject} query would be {length:,} "
                    f"characters long, over the URI limit ({room:,} with `max_uri_chars` "
                    f"{self.settings.max_uri_chars:,}); list fewer custom fields"
                )

    # -- page conversions ------------------------------------------------------------------------

    def _lookup(
        self, sobject: str, fields: Sequence[str], key: str, values: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Rows of `sobject` whose `key` is one of `values`, in chunks of `ID_CHUNK`."""
        wanted = sorted({v for v in values if v})
        rows: list[dict[str, Any]] = []
        for chunk in batched(wanted, ID_CHUNK):
            listed = ", ".join(soql_string(v) for v in chunk)
            soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {key} IN ({listed})"
            for page in self.client.query(soql):
                rows.extend(page)
        return rows

    def _people(self, sobject: str) -> Convert:
        def convert(rows: list[dict[str, Any]]) -> list[Item]:
            opportunities: dict[str, dict[str, Any]] = {}
            if sobject == "Lead" and self.settings.outcomes:
                ids = [str(r.get("ConvertedOpportunityId") or "") for r in rows
                       if r.get("IsConverted") and not r.get("IsDeleted")]  # fmt: skip
                found = self._lookup("Opportunity", mapping.OPPORTUNITY_FIELDS, "Id", ids)
                opportunities = {str(o.get("Id")): o for o in found}
            items: list[Item] = []
            for row in rows:
                items.extend(
                    mapping.person_items(self.name, sobject, row, self.settings, opportunities)
                )
            return items

        return convert

    def _opportunities(self, rows: list[dict[str, Any]]) -> list[Item]:
        by_id = {str(r.get("Id")): r for r in rows if r.get("Id")}
        leads = self._lookup(
            "Lead", mapping.CONVERTED_LEAD_FIELDS, "ConvertedOpportunityId", list(by_id)
        )
        return [
            mapping.outcome_item(
                self.name, lead, by_id.get(str(lead.get("ConvertedOpportunityId")))
            )
            for lead in leads
        ]

    def _campaign_members(self, rows: list[dict[str, Any]]) -> list[Item]:
        ids = {str(r.get("CampaignId") or "") for r in rows} - self._campaigns.keys()
        found = self._lookup("Campaign", mapping.CAMPAIGN_FIELDS, "Id", ids)
        self._campaigns.update(dict.fromkeys(i for i in ids if i))
        self._campaigns.update({str(c.get("Id")): c for c in found})
        items: list[Item] = []
        for row in rows:
            campaign = self._campaigns.get(str(row.get("CampaignId") or ""))
            items.extend(mapping.campaign_member_items(self.name, row, campaign, self.settings))
        return items

    def _tasks(self, rows: list[dict[str, Any]]) -> list[Item]:
        return [item for row in rows for item in mapping.task_items(self.name, row)]

    def _events(self, rows: list[dict[str, Any]]) -> list[Item]:
        return [item for row in rows for item in mapping.event_items(self.name, row)]

    def close(self) -> None:
        self.client.close()

"""The Lead Ads source: every lead of the Page's forms, read per form with a time filter.

Per form (not per ad: forms also hold organic leads, and more leads than any one ad), the read
asks for leads with `time_created` at or after the form's bookmark minus `overlap_seconds`, and
follows `paging.next` to the end. The cursor is `{"forms": {form_id: newest created_time}}` in
Unix seconds; it is saved only with the last page of a form, because Graph returns the newest
leads first: a crash mid-form reads the form again from its old bookmark, and every record
upserts on the lead id, so the overlap and the replay are harmless. Graph paging cursors are
never stored (Meta says they expire).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx

from connectors.base.contract import Cursor, Item, Page, SourceContext
from connectors.base.paging import Marks, bookmarked, itemized
from connectors.facebook_leads.client import GraphClient
from connectors.facebook_leads.mapping import lead_items
from connectors.facebook_leads.settings import FacebookLeadsSettings
from connectors.facebook_leads.webhook import HandleLeads, WebhookReceiver

STREAM = "leads"


def created_unix(value: Any) -> int | None:
    """Unix seconds of a Graph `created_time` (`2018-02-28T08:49:14+0000`) or a webhook int."""
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        return None
    for parse in (lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S%z"), datetime.fromisoformat):
        try:
            when = parse(value.strip())
        except ValueError:
            continue
        return int(when.timestamp()) if when.tzinfo else None
    return None


class LeadsStream:
    """Leads (and their `ad_form_submitted` activities) of every form to read."""

    name = STREAM
    replication_key = "created_time"

    def __init__(self, source: str, settings: FacebookLeadsSettings, client: GraphClient) -> None:
        self.source, self.settings, self.client = source, settings, client

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        marks = Marks("forms", cursor, load=int)
        for form in self.client.forms():
            yield from self._read_form(form, marks)

    def _read_form(self, form: Mapping[str, Any], marks: Marks[int]) -> Iterator[Page]:
        """The form's pages; the last one carries the advanced bookmark."""
        form_id, form_name = str(form["id"]), form.get("name")
        mark = marks.bookmark(form_id)
        start = self.settings.start_time
        since = mark.start(self.settings.overlap_seconds, int(start.timestamp()) if start else None)

        def items(lead: Any) -> list[Item]:
            return lead_items(self.source, lead, form_name, self.settings)

        pages = self.client.leads(form_id, since)
        batches = itemized(
            pages, items, mark, lambda lead: created_unix(lead.get(self.replication_key))
        )
        yield from bookmarked(batches, marks.cursor(form_id, mark))


class FacebookLeadsSource:
    """One Page's lead forms.

    Parameters:
        name: the source's name in the hub file.
        settings: the validated block.
        transport, sleep: for tests (a mock transport; a sleep that records waits).
    """

    def __init__(
        self,
        name: str,
        settings: FacebookLeadsSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name, self.settings = name, settings
        self.client = GraphClient(name, settings, transport=transport, sleep=sleep)

    def streams(self) -> Sequence[LeadsStream]:
        return [LeadsStream(self.name, self.settings, self.client)]

    def fetch_leads(self, lead_ids: Sequence[str]) -> list[Item]:
        """The items of leads read one by one (`GET /{leadgen_id}`), as a webhook names them."""
        items: list[Item] = []
        for lead_id in lead_ids:
            lead = self.client.lead(lead_id)
            form_id = str(lead.get("form_id") or "")
            name = self.client.form(form_id).get("name") if form_id else None
            items.extend(lead_items(self.name, lead, name, self.settings))
        return items


class FacebookLeadsConnector:
    """Entry point `facebook_leads` in `leadhub.connectors`: a source, plus a webhook receiver."""

    name: ClassVar[str] = "facebook_leads"
    settings_model: ClassVar[type[FacebookLeadsSettings]] = FacebookLeadsSettings

    def source(
        self, settings: FacebookLeadsSettings, context: SourceContext
    ) -> FacebookLeadsSource:
        return FacebookLeadsSource(context.name, settings)

    def webhook(
        self, settings: FacebookLeadsSettings, context: SourceContext, handle_leads: HandleLeads
    ) -> WebhookReceiver:
        """The `/webhooks/facebook` receiver of this source (see its module for the wiring)."""
        return WebhookReceiver(FacebookLeadsSource(context.name, settings), handle_leads)

"""The HubSpot source: contacts (outcomes, merges), archived contacts, email events, forms."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from connectors.base.contract import Stream
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.contacts import ContactsStream
from connectors.hubspot.engagement import ArchivedStream, EmailEventsStream, FormSubmissionsStream
from connectors.hubspot.settings import HubSpotSettings
from core.http import RateBudget


def default_token_file(settings: HubSpotSettings, base_dir: Path) -> Path:
    """One file per OAuth credential, so blocks sharing an app install share its rotations."""
    oauth = settings.oauth
    seed = f"{oauth.client_id}:{oauth.refresh_token.get_secret_value()}" if oauth else ""
    return (
        base_dir
        / ".leadhub"
        / f"hubspot-oauth-{hashlib.sha256(seed.encode()).hexdigest()[:12]}.json"
    )


class HubSpotSource:
    """One portal's contacts and engagement.

    Parameters:
        name: the source's name in the hub file (and the identity system of its records).
        settings: the validated block.
        base_dir: the hub file's folder (where OAuth keeps a rotated refresh token).
        transport, sleep, clock, budget: for tests.
        now: what the streams measure their windows from (default: `clock`); the client's
            token expiry and rate budget keep `clock`.
    """

    def __init__(
        self,
        name: str,
        settings: HubSpotSettings,
        *,
        base_dir: Path = Path("."),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        budget: RateBudget | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.name, self.settings, self._clock = name, settings, now or clock
        self.client = HubSpotClient(
            settings, where=f"sources.{name}", label=f"hubspot source {name!r}",
            token_file=default_token_file(settings, base_dir), transport=transport, sleep=sleep,
            clock=clock, budget=budget,
        )  # fmt: skip

    def streams(self) -> Sequence[Stream]:
        s, client = self.settings, self.client
        streams: list[Stream] = [ContactsStream(self.name, s, client, self._clock)]
        if s.archived:
            streams.append(ArchivedStream(self.name, s, client))
        if s.email_events:
            streams.append(EmailEventsStream(self.name, s, client, self._clock))
        if s.form_ids:
            streams.append(FormSubmissionsStream(self.name, s, client))
        return streams

"""The `hubspot` connector: contacts and email engagement in, scores and follow-up tasks out.

Vendor facts it is built on: `shared/api/hubspot.md`; settings: `connectors/hubspot/README.md`;
a faithful sandbox of the API it calls: `connectors.hubspot.sandbox.app` (mounted at `/hubspot`).
"""

from __future__ import annotations

from typing import ClassVar

from connectors.base.contract import ConnectorSettings, DestinationContext, SourceContext
from connectors.hubspot.destination import HubSpotDestination
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.source import HubSpotSource


class HubSpotConnector:
    """Entry point `hubspot` in `leadhub.connectors`: a source and a destination."""

    name: ClassVar[str] = "hubspot"
    settings_model: ClassVar[type[ConnectorSettings]] = HubSpotSettings

    def source(self, settings: HubSpotSettings, context: SourceContext) -> HubSpotSource:
        return HubSpotSource(context.name, settings, base_dir=context.base_dir, now=context.clock)

    def destination(
        self, settings: HubSpotSettings, context: DestinationContext
    ) -> HubSpotDestination:
        return HubSpotDestination(context.name, settings, context.config, base_dir=context.base_dir)


__all__ = ["HubSpotConnector", "HubSpotDestination", "HubSpotSettings", "HubSpotSource"]

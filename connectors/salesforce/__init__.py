"""The `salesforce` connector: Leads, Contacts, campaigns and activities in; scores back on Leads.

Source (`connectors.salesforce.source`): SOQL over `/query` and `/queryAll`, incremental on
`SystemModstamp` with an `Id` tie-breaker; Leads (and Contacts), outcomes of converted Leads from
their Opportunities, campaign members, completed Tasks and Events. Destination
(`connectors.salesforce.destination`): sObject Collections of 200, or a Bulk API 2.0 ingest job
above `bulk_threshold`; a follow-up Task per qualified lead. Auth (`connectors.salesforce.auth`):
refresh-token, JWT bearer or client-credentials flow. Settings: `connectors/salesforce/README.md`.
"""

from __future__ import annotations

from typing import ClassVar

from connectors.base.contract import ConnectorSettings, DestinationContext, SourceContext
from connectors.salesforce.destination import SalesforceDestination
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.source import SalesforceSource

__all__ = [
    "SalesforceConnector",
    "SalesforceDestination",
    "SalesforceSettings",
    "SalesforceSource",
]


class SalesforceConnector:
    """Entry point `salesforce` in `leadhub.connectors`: a source and a destination."""

    name: ClassVar[str] = "salesforce"
    settings_model: ClassVar[type[ConnectorSettings]] = SalesforceSettings
    destination_settings_model: ClassVar[type[ConnectorSettings]] = SalesforceSettings

    def source(self, settings: SalesforceSettings, context: SourceContext) -> SalesforceSource:
        return SalesforceSource(context.name, settings, base_dir=context.base_dir)

    def destination(
        self, settings: SalesforceSettings, context: DestinationContext
    ) -> SalesforceDestination:
        return SalesforceDestination(
            context.name, settings, context.config, base_dir=context.base_dir
        )

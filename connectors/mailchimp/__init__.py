"""The `mailchimp` connector: audience members and email engagement in, score and tier back.

Source (`connectors.mailchimp.source`): members of the configured audiences, incrementally by
`last_changed`, and opens, clicks, bounces and unsubscribes of recent campaigns, each campaign
with its own bookmark. Destination (`connectors.mailchimp.destination`): the score into a number
merge field and the tier as tags, in batches of up to 500 members. Settings:
`connectors/mailchimp/README.md`; the sandbox: `connectors.mailchimp.sandbox.app`.
"""

from __future__ import annotations

from typing import ClassVar

from connectors.base.contract import ConnectorSettings, DestinationContext, SourceContext
from connectors.mailchimp.destination import MailchimpDestination
from connectors.mailchimp.settings import MailchimpDestinationSettings, MailchimpSourceSettings
from connectors.mailchimp.source import MailchimpSource

__all__ = [
    "MailchimpConnector",
    "MailchimpDestination",
    "MailchimpDestinationSettings",
    "MailchimpSource",
    "MailchimpSourceSettings",
]


class MailchimpConnector:
    """Entry point `mailchimp` in `leadhub.connectors`: a source and a destination."""

    name: ClassVar[str] = "mailchimp"
    settings_model: ClassVar[type[ConnectorSettings]] = MailchimpSourceSettings
    destination_settings_model: ClassVar[type[ConnectorSettings]] = MailchimpDestinationSettings

    def source(self, settings: MailchimpSourceSettings, context: SourceContext) -> MailchimpSource:
        return MailchimpSource(context.name, settings)

    def destination(
        self, settings: MailchimpDestinationSettings, context: DestinationContext
    ) -> MailchimpDestination:
        return MailchimpDestination(
            context.name, settings, context.config, base_dir=context.base_dir
        )

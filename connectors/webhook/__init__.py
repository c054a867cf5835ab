"""The `webhook` destination: POSTs batches of changed scores as signed JSON to a URL.

For chat tools and workflow engines. Every request carries
`X-Leadhub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>`;
see `connectors.webhook.destination` for the payload and how to verify it.
"""

from connectors.webhook.destination import (
    SIGNATURE_HEADER,
    WebhookConnector,
    WebhookDestination,
    WebhookSettings,
    sign,
    verify,
)

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookConnector",
    "WebhookDestination",
    "WebhookSettings",
    "sign",
    "verify",
]

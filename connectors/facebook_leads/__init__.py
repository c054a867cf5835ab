"""The Facebook Lead Ads connector: form leads by polling the Graph API and in real time by webhook.

    client.py         Graph calls: auth and appsecret_proof, error codes, usage headers, paging
    settings.py       the source block
    mapping.py        a Graph lead → LeadRecord + `ad_form_submitted` activity
    source.py         the `leads` stream (per form, filtered on time_created) and the connector
    webhook.py        the `/webhooks/facebook` receiver (handshake, signatures, de-duplication)
    sandbox/          a Graph sandbox (app.py) seeded from the synthetic world (world.py)

Settings: `connectors/facebook_leads/README.md`.
"""

from connectors.facebook_leads.settings import FacebookLeadsSettings
from connectors.facebook_leads.source import (
    FacebookLeadsConnector,
    FacebookLeadsSource,
    LeadsStream,
)

__all__ = ["FacebookLeadsConnector", "FacebookLeadsSettings", "FacebookLeadsSource", "LeadsStream"]

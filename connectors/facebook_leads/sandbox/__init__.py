"""The facebook_leads sandbox: an emulator of the vendor API the connector calls."""

from connectors.facebook_leads.sandbox.app import create_app

__all__ = ["create_app"]

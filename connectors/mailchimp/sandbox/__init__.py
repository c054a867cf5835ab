"""The mailchimp sandbox: an emulator of the vendor API the connector calls."""

from connectors.mailchimp.sandbox.app import create_app

__all__ = ["create_app"]

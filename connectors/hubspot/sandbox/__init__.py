"""The hubspot sandbox: an emulator of the vendor API the connector calls."""

from connectors.hubspot.sandbox.app import create_app, demo_blocks

__all__ = ["create_app", "demo_blocks"]

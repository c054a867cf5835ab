"""The salesforce sandbox: an emulator of the vendor API the connector calls."""

from connectors.salesforce.sandbox.app import HOST_ROOT_PATHS, create_app, demo_blocks, serving

__all__ = ["HOST_ROOT_PATHS", "create_app", "demo_blocks", "serving"]

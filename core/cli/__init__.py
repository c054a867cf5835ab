"""The `leadhub` command line."""

from core.cli.main import app

__all__ = ["app"]

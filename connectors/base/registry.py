"""The connector registry: the one way core reaches a connector.

Connectors register a class under the entry-point group `leadhub.connectors` (see
`pyproject.toml`); `load_connectors()` finds them, typed as the contract's `Connector`, and
`open_source` / `open_destination` build a validated block's Source or Destination.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from connectors.base.contract import (
    Connector,
    ConnectorSettings,
    Destination,
    DestinationConnector,
    DestinationContext,
    Source,
    SourceConnector,
    SourceContext,
)
from connectors.base.settings import WRITEBACK_KEYS, DestinationSettings, describe
from core.errors import ConfigError

log = logging.getLogger("leadhub.connectors")
_BROKEN: dict[str, str] = {}


def load_connectors() -> dict[str, type[Connector]]:
    """Every connector registered under the `leadhub.connectors` entry-point group.

    A plugin that fails to import is left out (and named when someone asks for it), so one broken
    third-party connector does not take the whole hub down.
    """
    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group="leadhub.connectors"):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a plugin's import error is its own, not the hub's
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("connector %r could not be loaded: %s", ep.name, exc)
    return found


def get_connector(name: str) -> type[Connector]:
    """The connector class registered as `name`; ConfigError names the installed ones if none."""
    connectors = load_connectors()
    if name not in connectors:
        if name in _BROKEN:
            raise ConfigError(
                f"connector {name!r} is installed but failed to load: {_BROKEN[name]}"
            )
        known = ", ".join(sorted(connectors)) or "none installed"
        raise ConfigError(f"unknown connector {name!r} (known: {known})")
    return connectors[name]


def open_source(connector: str, settings: ConnectorSettings, context: SourceContext) -> Source:
    """The Source of one validated source block, built by its connector."""
    instance = get_connector(connector)()
    if not isinstance(instance, SourceConnector):
        raise ConfigError(
            f"sources.{context.name}.connector: the {connector} connector cannot read"
        )
    return instance.source(settings, context)


def open_destination(settings: DestinationSettings, base_dir: Path = Path(".")) -> Destination:
    """The Destination of one validated destination block, built by its connector."""
    instance = get_connector(settings.connector)()
    if not isinstance(instance, DestinationConnector):
        raise ConfigError(
            f"destinations.{settings.name}.connector: the {settings.connector} connector "
            "cannot write back"
        )
    return instance.destination(
        settings.options, DestinationContext(settings.name, settings, base_dir)
    )


def validate_destination(
    name: str, block: Mapping[str, Any], connectors: Mapping[str, type[Connector]]
) -> tuple[DestinationSettings | None, list[str]]:
    """Validate one destination block; returns the settings, or None and one line per problem."""
    where = f"destinations.{name}"
    kind = block.get("connector")
    if not isinstance(kind, str) or kind not in connectors:
        known = ", ".join(sorted(connectors)) or "none installed"
        return None, [f"{where}.connector: unknown connector {kind!r} (known: {known})"]
    cls = connectors[kind]
    if not hasattr(cls, "destination"):
        return None, [f"{where}.connector: the {kind} connector cannot write back"]
    options_model = cast(
        type[ConnectorSettings],
        getattr(cls, "destination_settings_model", None) or cls.settings_model,
    )
    own = {k: v for k, v in block.items() if k not in WRITEBACK_KEYS or k == "connector"}
    errors: list[str] = []
    try:
        options = options_model.model_validate(own)
    except ValidationError as exc:
        errors.extend(describe(exc, where))
    try:
        common = {k: v for k, v in block.items() if k in WRITEBACK_KEYS}
        settings = DestinationSettings.model_validate({**common, "name": name})
    except ValidationError as exc:
        errors.extend(describe(exc, where))
    if errors:
        return None, errors
    return settings.model_copy(update={"options": options}), []

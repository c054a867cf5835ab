"""The registry: every installed connector fits the contract's protocols, typed and built by name.

The oracle for "installed" is the `leadhub.connectors` table of pyproject.toml, read here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from connectors.base import (
    ConnectorSettings,
    DestinationConnector,
    DestinationSettings,
    SourceConnector,
    SourceContext,
    get_connector,
    load_connectors,
    open_destination,
    open_source,
)
from connectors.csv import CsvSettings
from core.errors import ConfigError

PYPROJECT = Path(__file__).parents[3] / "pyproject.toml"
DECLARED = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["leadhub.connectors"]


def test_every_declared_connector_loads_under_its_name_and_fits_a_protocol() -> None:
    found = load_connectors()
    assert set(found) == set(DECLARED)
    for name, cls in found.items():
        instance = cls()
        assert cls.name == name
        assert isinstance(instance, SourceConnector | DestinationConnector), name
        assert issubclass(cls.settings_model, ConnectorSettings)


def test_readers_and_writers_are_told_apart() -> None:
    kinds = {
        name: (isinstance(cls(), SourceConnector), isinstance(cls(), DestinationConnector))
        for name, cls in load_connectors().items()
    }
    assert kinds["csv"] == (True, False)
    assert kinds["hubspot"] == (True, True)


def test_an_unknown_connector_names_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector 'nope' \(known: csv, "):
        get_connector("nope")


def test_a_source_only_connector_cannot_open_a_destination(tmp_path: Path) -> None:
    settings = DestinationSettings(name="files", connector="csv")
    with pytest.raises(ConfigError, match=r"destinations\.files\.connector: .*cannot write back"):
        open_destination(settings, tmp_path)


def test_open_source_builds_the_source_of_a_block(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("email\nann@example.com\n", encoding="utf-8")
    settings = CsvSettings.model_validate(
        {"connector": "csv", "leads": "leads.csv"}, context={"base_dir": tmp_path}
    )
    source = open_source("csv", settings, SourceContext("web", tmp_path))
    assert source.name == "web"
    assert [s.name for s in source.streams()]

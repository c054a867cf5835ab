"""The hub file: validation errors name their path; ${VAR} interpolation; `leadhub check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import interpolate, load_hub
from core.errors import ConfigError

runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leadhub.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "leads.csv").write_text("external_id,email\n1,a@x.com\n", encoding="utf-8")
    return path


def test_missing_env_var_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  crm:\n    connector: csv\n    leads: ${LEADS_FILE}\n")
    with pytest.raises(ConfigError, match=r"sources\.crm\.leads: environment variable LEADS_FILE"):
        load_hub(path, env={})


def test_env_var_and_default_are_interpolated() -> None:
    data = {"a": "${TOKEN}", "b": ["x-${MISSING:-fallback}"], "c": 3}
    assert interpolate(data, env={"TOKEN": "t0k"}) == {"a": "t0k", "b": ["x-fallback"], "c": 3}


def test_unknown_connector_and_setting_name_their_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  crm:\n    connector: csv\n    leads: leads.csv\n    colums: {}\n"
        "  fb:\n    connector: nope\nbogus: 1\n",
    )
    with pytest.raises(ConfigError) as err:
        load_hub(path)
    text = str(err.value)
    assert "sources.crm.colums: unknown setting" in text
    assert "sources.fb.connector: unknown connector 'nope'" in text
    assert "bogus: unknown section" in text


def test_check_exits_2_with_the_field_path(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  fb:\n    leads: leads.csv\n")
    result = runner.invoke(app, ["-c", str(path), "check"])
    assert result.exit_code == 2
    assert "sources.fb.connector: field required" in result.output


def test_check_passes_on_the_init_example(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["-c", str(tmp_path / "leadhub.yaml"), "check"])
    assert result.exit_code == 0, result.output
    assert "1 source(s)" in result.output


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output

"""The hub file: validation errors name their path; ${VAR} interpolation; `leadhub check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import HubFileError, interpolate, load_hub
from core.errors import ConfigError
from core.hubcheck import check_hub

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


# -- misspelt keys, YAML errors, and checks of meaning --------------------------------------------


def test_misspelt_sections_and_keys_get_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sorces: {}\n"
        "sources:\n  crm:\n    connector: csv\n    leads: leads.csv\n    delimter: ';'\n"
        "  fb:\n    conector: csv\n"
        "destinations:\n  out:\n    connector: webhook\n    url: http://127.0.0.1:9/x\n"
        "    secret: s\n    feilds: {total: score}\n",
    )
    with pytest.raises(HubFileError) as err:
        load_hub(path)
    assert [str(p) for p in err.value.problems] == [
        "sorces: unknown section (did you mean 'sources'?)",
        "sources.crm.delimter: unknown setting (did you mean 'delimiter'?)",
        "sources.fb.conector: unknown key (did you mean 'connector'?)",
        "destinations.out.feilds: unknown setting (did you mean 'fields'?)",
    ]


def test_a_destination_field_that_is_no_output_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n  out:\n    connector: webhook\n    url: http://127.0.0.1:9/x\n"
        "    secret: s\n    fields: {totl: score, tier: tier}\n",
    )
    with pytest.raises(HubFileError) as err:
        load_hub(path)
    [problem] = err.value.problems
    assert problem.key == "destinations.out.fields.totl"
    assert problem.message.startswith("no output named 'totl' (did you mean 'total'?)")


def test_yaml_errors_name_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  crm:\n    connector: csv\n    leads: [a.csv\n")
    with pytest.raises(ConfigError) as err:
        load_hub(path)
    # The flow sequence opened on line 4 is never closed; the stream ends on line 5, column 1.
    assert str(err.value).startswith(f"{path}: line 5, column 1: invalid YAML: expected ',' or ']'")
    assert "<unicode string>" not in str(err.value)
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - name: m\n    fit: {max: 10\n", encoding="utf-8")
    path = write(tmp_path, "scoring: models.yaml\n")
    with pytest.raises(HubFileError) as err:
        load_hub(path)
    [problem] = err.value.problems
    assert problem.file == str(models) and problem.key.startswith("line 4, column 1")


MODEL = """\
models:
  - name: default
    fit:
      rules:
        - {name: Size, field: compnay_size, gt: 100, points: 10}
    engagement:
      max: -10
      rules:
        - {name: Webinar, event: webinar_atended, points: 15}
    tiers: [{name: hot, min: 70}, {name: cold, min: 10}]
"""


def test_check_hub_names_every_problem_of_meaning(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(MODEL, encoding="utf-8")
    path = write(
        tmp_path,
        "sources:\n  crm:\n    connector: csv\n    leads: leeds.csv\n"
        "destinations:\n  out:\n    connector: webhook\n    url: http://127.0.0.1:9/x\n"
        "    secret: s\n    model: defualt\n    sources: [crn]\n"
        "  out2:\n    connector: webhook\n    url: http://127.0.0.1:9/y\n    secret: s\n"
        "    fields: {total: score, grade: grade}\n"
        "scoring: models.yaml\n"
        "identity:\n  priority:\n    jobtitle: [crm]\n",
    )
    found = {p.key: p for p in check_hub(load_hub(path))}
    assert set(found) == {
        "sources.crm.leads",
        "models[0].fit.rules[0] (Size).field",
        "models[0].engagement.rules[0] (Webinar).event",
        "models[0].engagement.max",
        "models[0].tiers[1] (cold).min",
        "destinations.out.model",
        "destinations.out.sources",
        "destinations.out2.fields.grade",
        "identity.priority.jobtitle",
    }
    assert found["sources.crm.leads"].message == (
        f"{tmp_path / 'leeds.csv'} does not exist (did you mean 'leads.csv'?)"
    )
    assert found["models[0].engagement.max"].file == str(tmp_path / "models.yaml")
    assert "did you mean 'default'?" in found["destinations.out.model"].message
    assert "did you mean 'crm'?" in found["destinations.out.sources"].message
    assert "has no `grade:`" in found["destinations.out2.fields.grade"].message
    assert all(p.severity == "error" for p in found.values())


def test_check_hub_finds_nothing_in_the_init_example(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    assert check_hub(load_hub(tmp_path / "leadhub.yaml")) == []

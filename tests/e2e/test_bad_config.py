"""Bad configuration: for every installed connector, each required setting left out and each
setting given a value of the wrong type makes `leadhub check` exit 2 with a message naming the
key as it is written in the hub file (`sources.<name>.<key>`, `destinations.<name>.<key>`; a rule
across keys is reported on the block, with the keys named in its message)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from connectors.base import load_connectors
from connectors.base.settings import WRITEBACK_KEYS
from tests.e2e.harness import MODEL_FILE

WRONG = [["not", {"a": "setting"}]]  # no setting of any documented type takes this
BASE = "http://127.0.0.1:9"
# A minimal valid block per connector and role; others come from their sandbox's demo blocks.
VALID: dict[tuple[str, str], dict[str, Any]] = {
    ("csv", "source"): {"leads": "leads.csv"},
    ("facebook_leads", "source"): {"page_id": "1", "access_token": "token"},
    ("mailchimp", "source"): {"api_key": "key-us6", "list_ids": ["a1"]},
    ("mailchimp", "destination"): {"api_key": "key-us6", "list_id": "a1", "system": "mailchimp",
                                   "mode": "update", "fields": {"total": "LSCORE"}},
    ("webhook", "destination"): {"url": f"{BASE}/hook", "secret": "s", "mode": "upsert",
                                 "fields": {"total": "score"}},
}  # fmt: skip
NOT_A_ROLE = {("webhook", "source")}  # its `source` only says to list it under destinations


def demo_block(name: str, role: str) -> dict[str, Any] | None:
    try:
        module = importlib.import_module(f"connectors.{name}.sandbox")
        sources, destinations = module.demo_blocks(f"{BASE}/{name}")
    except (ImportError, AttributeError):
        return None
    blocks = sources if role == "source" else destinations
    block = next(iter(blocks.values()), None)
    return {k: v for k, v in block.items() if k not in ("connector", "schedule")} if block else None


def cases() -> list[Any]:
    found = []
    for name, cls in sorted(load_connectors().items()):
        roles = [r for r in ("source", "destination")
                 if hasattr(cls, r) and (name, r) not in NOT_A_ROLE]  # fmt: skip
        found += [pytest.param(name, role, id=f"{name}-{role}") for role in roles]
    return found


def options_model(cls: Any, role: str) -> type[BaseModel]:
    if role == "destination":
        return getattr(cls, "destination_settings_model", None) or cls.settings_model
    return cls.settings_model


def check(tmp_path: Path, name: str, role: str, block: dict[str, Any]) -> tuple[int, str]:
    from core.cli import app

    (tmp_path / "leads.csv").write_text("email\nann@example.com\n", encoding="utf-8")
    (tmp_path / "models.yaml").write_bytes(MODEL_FILE.read_bytes())
    section = "sources" if role == "source" else "destinations"
    content = {section: {"x": {"connector": name, **block}}, "scoring": "models.yaml"}
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(yaml.safe_dump(content), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(hub), "check"])
    return result.exit_code, result.output


@pytest.mark.parametrize(("name", "role"), cases())
def test_each_missing_or_wrong_setting_is_named_by_leadhub_check(
    tmp_path: Path, name: str, role: str
) -> None:
    cls = load_connectors()[name]
    valid = VALID.get((name, role)) or demo_block(name, role)
    if valid is None:
        pytest.skip(f"no example block for the {name} {role}")
    assert check(tmp_path, name, role, valid)[0] == 0, "the example block itself is valid"
    model = options_model(cls, role)
    where = f"{'sources' if role == 'source' else 'destinations'}.x"
    problems = []
    fields = {k: f for k, f in model.model_fields.items() if k != "connector"}
    for key, spec in fields.items():
        alias = spec.alias or key
        variants = [("wrong", {**valid, alias: WRONG})]
        if spec.is_required() or alias in valid:  # required, or needed by a cross-check
            variants.append(("missing", {k: v for k, v in valid.items() if k != alias}))
        for what, block in variants:
            try:  # the connector's own keys; the write-back keys are validated apart
                model.model_validate({k: v for k, v in block.items() if k not in WRITEBACK_KEYS})
                continue  # the value is acceptable to this setting after all
            except ValidationError:
                pass
            code, output = check(tmp_path, name, role, block)
            # A rule across keys ("set exactly one of `api_key` and `access_token`") is reported
            # on the block, naming the keys in its message.
            across = f"{where}:" in output and re.search(rf"\b{re.escape(alias)}\b", output)
            named = f"{where}.{alias}" in output or across
            if code != 2 or not named:
                problems.append(f"{what} {alias}: exit {code}: {output.strip()[:200]}")
    assert problems == []
    assert fields  # the connector has settings to check


@pytest.mark.parametrize(
    ("value", "says"),
    [("0", "greater than or equal to 1"), ("two", "valid integer")],
)
def test_an_invalid_environment_setting_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    """An environment setting the settings model refuses ends any command before it runs:
    exit 2, one line naming the variable, what is wrong and the value given; no traceback."""
    from core.cli import app

    monkeypatch.setenv("LEADHUB_SCORE_CONNECTIONS", value)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(app, ["--database-url", url, "status"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error: LEADHUB_SCORE_CONNECTIONS: ")
    assert says in lines[0] and repr(value) in lines[0]
    assert not (tmp_path / "store.db").exists()  # no command ran

"""The command table of `leadhub`: every command listed, its summary its own docstring's."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import typer
from typer.testing import CliRunner

from core.cli import app
from core.cli.main import COMMANDS, GROUPS


def test_each_summary_is_the_first_paragraph_of_its_commands_docstring() -> None:
    for name, module, attribute, summary in COMMANDS:
        target = getattr(importlib.import_module(f"core.cli.{module}"), attribute)
        first = (inspect.getdoc(target) or "").split("\n\n")[0].replace("\n", " ")
        assert summary == first, f"leadhub {name}: the table's summary is not the docstring's"
    for name, module, attribute, summary in GROUPS:
        target = getattr(importlib.import_module(f"core.cli.{module}"), attribute)
        assert isinstance(target, typer.Typer)
        assert summary == target.info.help, f"leadhub {name}: the table's summary differs"


def test_every_command_answers_its_own_help() -> None:
    runner = CliRunner()
    for name, *_ in COMMANDS + GROUPS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output, name


def test_the_command_list_imports_no_command_module() -> None:
    # `leadhub --help` lists every command from the table: none of their modules is loaded.
    code = (
        "import sys; from typer.testing import CliRunner; from core.cli import app; "
        "CliRunner().invoke(app, ['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('core.cli.') "
        "and m not in ('core.cli.main', 'core.cli.terminal')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

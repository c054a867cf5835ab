"""Progress of long work: a count, a rate and the time left on a terminal; nothing in a pipe."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import bench.run
from core.cli import app, common
from core.cli import bench as bench_command

runner = CliRunner()


def terminal(monkeypatch: pytest.MonkeyPatch, is_terminal: bool) -> io.StringIO:
    """Point the commands' console at a buffer that is (or is not) a terminal."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=is_terminal, width=160)
    monkeypatch.setattr(common, "console", console)
    monkeypatch.setattr(bench_command, "console", console)
    return screen


def test_a_progress_bar_counts_and_says_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = terminal(monkeypatch, is_terminal=True)
    with common.progress_bar("scoring", total=400) as tracker:
        tracker.update(100, 400)
    shown = screen.getvalue()
    assert "scoring" in shown and "100/400" in shown
    assert "left" in shown and "/s" in shown


def test_no_progress_bar_in_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = terminal(monkeypatch, is_terminal=False)
    with common.progress_bar("scoring", total=400) as tracker:
        tracker.update(100, 400)
    assert screen.getvalue() == ""


def fake_bench(
    size: str,
    pg_url: str | None,
    sections: list[str] | None = None,
    echo: Any = None,
    starting: Any = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Two sections that each report one figure, as `bench.run.run_all` calls its hooks."""
    result: dict[str, Any] = {"size": size, "sections": {}, "seconds": {}}
    for name in sections or ["push", "webhook"]:
        starting(name)
        result["sections"][name] = [{"figure": 1}]
        result["seconds"][name] = 0.0
        echo(name, result["sections"][name])
    return result


@pytest.mark.parametrize("is_terminal", [True, False])
def test_bench_shows_its_sections_progress_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, is_terminal: bool
) -> None:
    monkeypatch.setattr(bench.run, "run_all", fake_bench)
    screen = terminal(monkeypatch, is_terminal)
    args = ["bench", "--section", "push", "--section", "webhook"]
    result = runner.invoke(app, ["--database-url", f"sqlite:///{tmp_path / 'x.db'}", *args])
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # colours and cursor moves
    assert "2 section(s)" in shown  # the figures themselves, either way
    if is_terminal:
        assert "2/2" in shown and "left" in shown
    else:
        assert "2/2" not in shown and "left" not in shown


def test_sync_of_a_csv_counts_towards_its_rows_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = "".join(f"p{n}@example.com,Director\n" for n in range(2500))
    (tmp_path / "leads.csv").write_text(f"email,job_title\n{rows}", encoding="utf-8")
    (tmp_path / "leadhub.yaml").write_text(
        "sources:\n  crm:\n    connector: csv\n    leads: leads.csv\n    page_size: 1000\n",
        encoding="utf-8",
    )
    screen = terminal(monkeypatch, is_terminal=True)
    hub = ["-c", str(tmp_path / "leadhub.yaml")]
    result = runner.invoke(app, [*hub, "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "sync"])
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "pulling crm" in shown and "/2500" in shown  # the file's 2,500 rows as the total


def test_sync_json_on_a_terminal_prints_the_json_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text("email\na@example.com\n", encoding="utf-8")
    (tmp_path / "leadhub.yaml").write_text(
        "sources:\n  crm:\n    connector: csv\n    leads: leads.csv\n"
        "scoring: {models: [{name: default}]}\n",
        encoding="utf-8",
    )
    screen = terminal(monkeypatch, is_terminal=True)
    hub = ["-c", str(tmp_path / "leadhub.yaml"), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    for command in ("sync", "score"):
        result = runner.invoke(app, [*hub, command, "--json"])
        assert result.exit_code == 0, result.output
    assert screen.getvalue() == ""

"""What the commands that use the store or the hub file share: both opened lazily, once per
invocation, and the progress bar of long work. The light part (consoles, JSON, times, the error
handler) is `core.cli.terminal`, re-exported here."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from core.cli import terminal
from core.cli.terminal import (
    JSON_HELP,
    console,
    err_console,
    handles_errors,
    heading,
    iso,
    print_json,
    redacted_url,
    service_failure,
)
from core.config import HubConfig, load_hub
from core.errors import ConfigError
from core.logs import make_handler
from core.settings import Settings, settings_problems
from core.store.store import Store
from scoring.model import ModelError, ScoringModel, load_model_file

__all__ = [
    "JSON_HELP",
    "console",
    "err_console",
    "handles_errors",
    "heading",
    "hub_model",
    "iso",
    "print_json",
    "progress_bar",
    "read_model_file",
    "service_failure",
    "state",
]


@dataclass
class State:
    """The settings of this invocation, and the store and hub file, opened on first use."""

    _settings: Settings | None = None
    _store: Store | None = None
    _hub: HubConfig | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except ValidationError as exc:
                raise ConfigError(settings_problems(exc)) from None
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value
        # The light commands and the error messages see what the command set.
        terminal.invocation = replace(
            terminal.invocation,
            database_url=value.database_url,
            broker_url=value.broker_url,
            config=Path(value.config),
            log_level=value.log_level,
        )

    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.settings.database_url)
            except ImportError as exc:  # a scheme whose driver is not installed (mysql://)
                url = redacted_url(self.settings.database_url)
                raise ConfigError(
                    f"LEADHUB_DATABASE_URL / --database-url: no driver for {url!r} "
                    f"({exc}); leadhub runs on sqlite:///… or postgresql://…"
                ) from None
        return self._store

    def hub(self) -> HubConfig:
        if self._hub is None:
            self._hub = load_hub(Path(self.settings.config))
        return self._hub

    def begin(self) -> None:
        """A new invocation: settings as the global options left them, store and hub reopened.
        An invalid setting ends it with a one-line error (exit 2), before any command runs."""
        self._settings = self._store = self._hub = None
        try:
            level = self.settings.log_level
        except ConfigError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None
        setup_logging(level)


state = State()
terminal.on_invocation.append(state.begin)


def setup_logging(level: str) -> None:
    """Log leadhub's own records to stderr at `level` (once per process)."""

    logger = logging.getLogger("leadhub")
    logger.setLevel(level.upper())
    if not logger.handlers:
        logger.addHandler(make_handler("text"))


def hub_model(name: str | None) -> ScoringModel:
    """The hub file's model called `name`, or its first model when `name` is None."""
    models = state.hub().models
    if not models:
        raise ConfigError(f"{state.hub().path}: no scoring models configured (`scoring:`)")
    if name is None:
        return models[0]
    for model in models:
        if model.name == name:
            return model
    raise ConfigError(f"no model named {name!r} (configured: {', '.join(m.name for m in models)})")


class Tracker:
    """Feeds one rich progress task: `update(done, total)` with absolute counts."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task
        self._done = 0
        self._total: int | None = None

    def update(self, done: int, total: int | None = None) -> None:
        self._done, self._total = done, total
        self._progress.update(self._task, completed=done, total=total)

    def advance(self, count: int, left: int | None = None) -> None:
        """`count` more done; `left`, when known, makes the total what is done plus it.

        The total only grows (the next stream of a source adds its own): rich forgets the rate
        whenever the total changes, so an estimate that shrinks a little is left as it was.
        """
        self._done += count
        self._progress.advance(self._task, count)
        if left is not None and (self._total is None or self._done + left > self._total):
            self._total = self._done + left
            self._progress.update(self._task, total=self._total)

    def describe(self, text: str) -> None:
        """Say what is being done now (the bench's current section)."""
        self._progress.update(self._task, description=text)


@contextmanager
def progress_bar(
    description: str, total: int | None = None, rate_over: float = 30.0, quiet: bool = False
) -> Iterator[Tracker]:
    """A progress line for long work: count, rate, elapsed, and time left once a total is known.

    The rate is measured over the last `rate_over` seconds (the whole run, for steps that take
    minutes each). Only on a terminal and unless `quiet` (`--json`), and gone when done (the
    result table follows): a file, a pipe or a script gets the result alone.
    """

    class RateColumn(ProgressColumn):
        """Items per second over the last moments (rich's own is for bytes)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                rate = "-/s"
            elif speed < 1:  # minutes per item (the bench's sections): per minute
                rate = f"{speed * 60:,.1f}/min"
            else:
                rate = f"{speed:,.0f}/s"
            return Text(rate, style="progress.data.speed")

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns,
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
        speed_estimate_period=rate_over,
    ) as bar:
        task = bar.add_task(description, total=total)
        bar.advance(task, 0)  # the start, so that a rate is known from the first step done
        yield Tracker(bar, task)


def read_model_file(path: Path) -> list[ScoringModel]:
    """The models of the file at `path`; a ConfigError naming the file when it is not valid."""
    try:
        return load_model_file(path)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from None

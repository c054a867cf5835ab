"""What every command module shares: the consoles, the lazily opened store and hub file, the
error handler that maps leadhub errors to exit codes, and JSON output."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
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
from sqlalchemy import exc as sa_exc

from core.config import load_hub
from core.errors import ConfigError, LeadhubError
from core.logs import make_handler
from core.settings import Settings
from core.store.store import Store
from scoring.model import ModelError, ScoringModel, load_model_file

# Every command module imports this one, and `leadhub --help` imports every command module: what
# is heavy (pydantic settings, SQLAlchemy, the connectors) is imported where it is first used.
if TYPE_CHECKING:
    from core.config import HubConfig
    from core.settings import Settings
    from core.store.store import Store
    from scoring.model import ScoringModel

# Piped or redirected, rich would lay tables out for 80 columns and cut cells (`ivo.berg2…`):
# a file or another program wants whole values, so lines are as long as their content there
# (unless COLUMNS says otherwise).
WIDE = 100_000


def make_console(stderr: bool = False) -> Console:
    """A console at the terminal's width, or unlimited when output is not a terminal.

    Errors (stderr) are never broken into lines by rich: one problem stays one line to grep.
    """
    console = Console(stderr=stderr, soft_wrap=stderr)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=WIDE, soft_wrap=True)


console = make_console()
err_console = make_console(stderr=True)
JSON_HELP = "Print the result as JSON, for scripts."


def heading(text: str) -> None:
    """A section title: a rule across a terminal; a plain line in a file or pipe, where the
    console is as wide as a table needs and a rule would be that wide too."""
    if console.is_terminal:
        console.rule(text)
    else:
        console.print(text)


P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class State:
    """The settings of this invocation, and the store and hub file, opened on first use."""

    _settings: Settings | None = None
    _store: Store | None = None
    _hub: HubConfig | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value

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


state = State()


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn leadhub errors, and a store or broker that cannot be reached, into a one-line red
    message and the documented exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LeadhubError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            failure = service_failure(exc)
            if failure is None:
                raise
            message, code = failure
            err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
            raise typer.Exit(code) from None

    return wrapper


def service_failure(exc: Exception) -> tuple[str, int] | None:
    """A message naming the setting, and the exit code, for a store or broker failure.

    An invalid store URL is bad configuration (2); a store or broker that does not answer, or
    refuses, is a failure (1). Anything else is None: a bug keeps its traceback.
    """
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        url = redacted_url(state.settings.database_url)
        if isinstance(exc, sa_exc.ArgumentError):  # an unparsable URL or an unknown scheme
            return (
                f"LEADHUB_DATABASE_URL / --database-url: {url!r} is not a database URL "
                f"({first_line(exc)}); use sqlite:///leadhub.db or postgresql://user@host/db",
                2,
            )
        if isinstance(exc, sa_exc.DBAPIError):
            reason = first_line(exc.orig) if exc.orig is not None else first_line(exc)
            return (
                f"cannot use the database at {url} ({reason}); "
                f"check LEADHUB_DATABASE_URL / --database-url",
                1,
            )
    unreachable = {"ConnectionError", "TimeoutError", "ConnectionClosed"}
    if module.startswith(("redis", "dramatiq")) and any(
        cls.__name__ in unreachable for cls in type(exc).__mro__
    ):
        url = redacted_url(state.settings.broker_url or "")
        return f"cannot reach the broker at {url} ({first_line(exc)}); check LEADHUB_BROKER_URL", 1
    return None


def redacted_url(url: str) -> str:
    """`url` with its password replaced by ***, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add hints and SQL on later lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def setup_logging(level: str) -> None:
    """Log leadhub's own records to stderr at `level` (once per process)."""

    logger = logging.getLogger("leadhub")
    logger.setLevel(level.upper())
    if not logger.handlers:
        logger.addHandler(make_handler("text"))


def print_json(data: Any) -> None:
    """`data` as indented JSON; times in ISO 8601 UTC (`2026-06-01T12:00:00Z`)."""
    typer.echo(json.dumps(data, indent=2, default=_json_value))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value, "auto")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def iso(value: datetime | None, timespec: str = "seconds") -> str:
    """A time as ISO 8601 in UTC with a `T` and a `Z` ("-" for none); naive times are UTC."""
    if value is None:
        return "-"
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec=timespec).replace("+00:00", "Z")


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

    def update(self, done: int, total: int | None = None) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Tracker]:
    """A progress line for long work: count, rate, elapsed, and time left once a total is known.

    Only on a terminal, and gone when done (the result table follows): a file or pipe gets the
    result alone.
    """

    class RateColumn(ProgressColumn):
        """Items per second over the last moments (rich's own is for bytes)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")

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
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        yield Tracker(bar, bar.add_task(description, total=total))


def read_model_file(path: Path) -> list[ScoringModel]:
    """The models of the file at `path`; a ConfigError naming the file when it is not valid."""
    try:
        return load_model_file(path)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from None

"""What every command shares that is light enough for `leadhub --help` and `leadhub leads`: the
consoles, JSON and time formats, the error handler that maps failures to exit codes, and the
global options of this invocation.

Nothing here imports SQLAlchemy, pydantic-settings, httpx or the connectors: `core.cli.common`
adds the store and the hub file for the commands that need them.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from core.errors import LeadhubError

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


# -- the invocation's global options -------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """Where the store, the broker and the hub file are, read from `LEADHUB_*` variables.

    The same names and defaults as `core.settings.Settings` (a test holds them together), read
    without pydantic-settings so that a light command does not pay for it.
    """

    database_url: str = "sqlite:///leadhub.db"
    broker_url: str | None = None
    config: Path = Path("leadhub.yaml")
    log_level: str = "WARNING"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Invocation:
        # As pydantic-settings reads them: the prefix and names in any case.
        env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
        defaults = cls()
        return cls(
            database_url=env.get("LEADHUB_DATABASE_URL", defaults.database_url),
            broker_url=env.get("LEADHUB_BROKER_URL", defaults.broker_url),
            config=Path(env.get("LEADHUB_CONFIG", str(defaults.config))),
            log_level=env.get("LEADHUB_LOG_LEVEL", defaults.log_level),
        )


invocation = Invocation.from_environment()
# Called each time `leadhub` starts a command (the CLI may run several in one process, as tests
# do): `core.cli.common` drops the store and hub file of the previous one and sets up logging.
on_invocation: list[Callable[[], None]] = []


def begin_invocation(overrides: Mapping[str, str]) -> None:
    """Apply the global options: exported as `LEADHUB_*` so that the job modules and worker
    processes a command starts see the same hub, then read back with the environment."""
    global invocation
    for key, value in overrides.items():
        os.environ[f"LEADHUB_{key.upper()}"] = value
    invocation = Invocation.from_environment()
    for hook in on_invocation:
        hook()


def command_module(name: str) -> ModuleType:
    """The module of `core.cli` that holds a command, imported on first use.

    Commands are loaded by name so that listing them, or running a light one, does not import
    what the others need (the store, the web app, the jobs).
    """
    return importlib.import_module(f"core.cli.{name}")


# -- errors and exit codes -----------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


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
    refuses, is a failure (1). Anything else is None: a bug keeps its traceback. Exceptions are
    recognised by their classes' names, so that this module imports none of the drivers.
    """
    module = type(exc).__module__
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    url = redacted_url(invocation.database_url)
    if module.startswith("sqlalchemy"):
        if "ArgumentError" in kinds:  # an unparsable URL or an unknown scheme
            return (
                f"LEADHUB_DATABASE_URL / --database-url: {url!r} is not a database URL "
                f"({first_line(exc)}); use sqlite:///leadhub.db or postgresql://user@host/db",
                2,
            )
        if "DBAPIError" in kinds:
            orig = getattr(exc, "orig", None)
            reason = first_line(orig) if orig is not None else first_line(exc)
            return database_failure(reason)
    if module.startswith(("psycopg", "sqlite3")) and "OperationalError" in kinds:
        return database_failure(first_line(exc))  # the light read path's drivers, used directly
    unreachable = {"ConnectionError", "TimeoutError", "ConnectionClosed"}
    if module.startswith(("redis", "dramatiq")) and kinds & unreachable:
        url = redacted_url(invocation.broker_url or "")
        return f"cannot reach the broker at {url} ({first_line(exc)}); check LEADHUB_BROKER_URL", 1
    return None


def database_failure(reason: str) -> tuple[str, int]:
    url = redacted_url(invocation.database_url)
    return (
        f"cannot use the database at {url} ({reason}); check LEADHUB_DATABASE_URL / --database-url",
        1,
    )


def redacted_url(url: str) -> str:
    """`url` with its password replaced by ***, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add hints and SQL on later lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- output --------------------------------------------------------------------------------------


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

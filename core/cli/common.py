"""What every command module shares: the consoles, the lazily opened store and hub file, the
error handler that maps leadhub errors to exit codes, and JSON output."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from core.config import HubConfig, load_hub
from core.errors import ConfigError, LeadhubError
from core.logs import make_handler
from core.settings import Settings
from core.store.store import Store
from scoring.model import ModelError, ScoringModel, load_model_file

console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class State:
    """The settings of this invocation, and the store and hub file, opened on first use."""

    settings: Settings = field(default_factory=Settings)
    _store: Store | None = None
    _hub: HubConfig | None = None

    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.database_url)
        return self._store

    def hub(self) -> HubConfig:
        if self._hub is None:
            self._hub = load_hub(Path(self.settings.config))
        return self._hub


state = State()


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn leadhub errors into a red message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LeadhubError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def setup_logging(level: str) -> None:
    """Log leadhub's own records to stderr at `level` (once per process)."""
    logger = logging.getLogger("leadhub")
    logger.setLevel(level.upper())
    if not logger.handlers:
        logger.addHandler(make_handler("text"))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


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


def read_model_file(path: Path) -> list[ScoringModel]:
    """The models of the file at `path`; a ConfigError naming the file when it is not valid."""
    try:
        return load_model_file(path)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from None

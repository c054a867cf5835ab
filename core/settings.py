"""Environment settings (prefix `LEADHUB_`); the CLI's global options override them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the store, the broker and the hub file are.

    Parameters:
        database_url: SQLAlchemy URL of the store; SQLite by default, `postgresql://…` for a team.
        broker_url: unset runs jobs in-process; `redis://…` runs them on dramatiq workers.
        config: path of the hub file.
        api_token: bearer token of `leadhub serve`'s API and dashboard (`Authorization: Bearer`).
        api_user, api_password: HTTP basic credentials of the same (what a browser prompts for).
        score_connections: how many connections (and threads) a full rescore on PostgreSQL
            scores its ranges of leads on, side by side; 1 scores them one after another.
            SQLite always uses one (one writer at a time).
        prepared_statements: PostgreSQL: a statement run again on a connection is prepared
            there (parsed once; still planned for its parameters each time). Turn it off
            behind a pooler in transaction mode (PgBouncer's `pool_mode = transaction`), where
            a connection's prepared statements and settings do not follow it.
    """

    model_config = SettingsConfigDict(env_prefix="LEADHUB_", extra="ignore")

    database_url: str = "sqlite:///leadhub.db"
    broker_url: str | None = None
    config: Path = Path("leadhub.yaml")
    log_level: str = "WARNING"
    api_token: SecretStr | None = None
    api_user: str | None = None
    api_password: SecretStr | None = None
    score_connections: int = Field(default=2, ge=1, le=16)
    prepared_statements: bool = True


def settings_problems(error: ValidationError, prefix: str = "LEADHUB_", given: bool = True) -> str:
    """Each invalid environment setting by its variable's name (`prefix` and the field's name),
    what is wrong with it and (`given`) the value it got; a problem of no one field (a check
    across fields) by its message alone."""
    problems = []
    for problem in error.errors():
        where = "_".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if given and where:
            message += f" (got {problem['input']!r})"
        problems.append(f"{prefix}{where}: {message}" if where else message)
    return "; ".join(problems)

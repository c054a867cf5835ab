"""The connector contract: sources yield pages of records, destinations write batches.

A connector is mostly data (paths, params, cursor field, a parse function per stream); shared
behaviour — retries, rate budgets, pagination guards, error classification — lives in `core.http`
and here. Connectors register under the entry-point group `leadhub.connectors`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from core.errors import ConfigError
from core.records import ActivityRecord, LeadRecord, OutcomeRecord

Cursor = dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """A payload that failed validation: stored in quarantine with its raw text and reason."""

    raw: str
    reason: str
    record_ref: str = ""


Item = LeadRecord | ActivityRecord | OutcomeRecord | Invalid


@dataclass(frozen=True)
class Page:
    """One unit of progress: its records and the cursor to resume after them.

    The pipeline stores the records and the cursor in one transaction, so a crash replays at most
    one page (and replays are harmless: upserts are keyed by `(source, external_id)`).
    """

    items: Sequence[Item]
    cursor: Cursor | None


@runtime_checkable
class Stream(Protocol):
    name: str

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages from `cursor` on (None: from the beginning)."""
        ...


class ConnectorSettings(BaseModel):
    """Base of every connector's block in the hub file. Secrets are `SecretStr` fields."""

    model_config = ConfigDict(extra="forbid")

    connector: str


@dataclass(frozen=True)
class SourceContext:
    """What a source may need from the hub besides its own settings."""

    name: str
    base_dir: Path = Path(".")


@runtime_checkable
class Source(Protocol):
    name: str

    def streams(self) -> Sequence[Stream]: ...


@dataclass(frozen=True)
class WriteItem:
    """One lead's values to write: `record_id` is the destination's id, None when new."""

    lead_id: int
    record_id: str | None
    values: Mapping[str, Any]
    lead_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteOutcome:
    """What the destination said of one record of a batch."""

    lead_id: int
    status: Literal["ok", "retry", "rejected"]
    record_id: str | None = None
    reason: str = ""


@runtime_checkable
class Destination(Protocol):
    name: str
    batch_size: int

    def prepare(self) -> None:
        """Check, or create, the fields this destination writes. Raise ConfigError if it cannot."""
        ...

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]: ...


class Connector(Protocol):
    """What an entry point in `leadhub.connectors` must resolve to."""

    name: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def source(self, settings: Any, context: SourceContext) -> Source: ...


def load_connectors() -> dict[str, Any]:
    """Every connector registered under the `leadhub.connectors` entry-point group."""
    found: dict[str, Any] = {}
    for ep in entry_points(group="leadhub.connectors"):
        found[ep.name] = ep.load()
    return found


def get_connector(name: str) -> Any:
    connectors = load_connectors()
    if name not in connectors:
        known = ", ".join(sorted(connectors)) or "none installed"
        raise ConfigError(f"unknown connector {name!r} (known: {known})")
    return connectors[name]

"""The connector contract: sources yield pages of records, destinations write batches.

A connector is mostly data (paths, params, cursor field, a parse function per stream); shared
behaviour — retries, rate budgets, pagination guards, error classification — lives in `core.http`
and here. Connectors register under the entry-point group `leadhub.connectors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from core.errors import ConfigError
from core.records import ActivityRecord, LeadRecord, OutcomeRecord

if TYPE_CHECKING:
    from connectors.base.settings import DestinationSettings

Cursor = dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """A payload that failed validation: stored in quarantine with its raw text and reason."""

    raw: str
    reason: str
    record_ref: str = ""


Item = LeadRecord | ActivityRecord | OutcomeRecord | Invalid


def json_kind(value: Any) -> str:
    """What a JSON value is, for a quarantine reason: `null`, `a number`, `a list`, …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


@dataclass(frozen=True)
class Page:
    """One unit of progress: its records and the cursor to resume after them.

    The pipeline stores the records and the cursor in one transaction, so a crash replays at most
    one page (and replays are harmless: upserts are keyed by `(source, external_id)`).
    """

    items: Sequence[Item]
    cursor: Cursor | None


def http_url(value: str | None) -> str | None:
    """A settings validator: `value` must be an http(s) URL with a host; a trailing `/` goes."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def checkpointed(
    batches: Iterable[list[Item]], final: Callable[[], Cursor | None]
) -> Iterator[Page]:
    """Pages of `batches`, held one behind so that the last carries `final()`: a bookmark known only
    once everything was read (None: the bookmark stays). Empty batches are skipped."""
    held: list[Item] | None = None
    for items in batches:
        if not items:
            continue
        if held is not None:
            yield Page(held, None)
        held = items
    cursor = final()
    if held is not None or cursor is not None:
        yield Page(held or [], cursor)


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
class DestinationContext:
    """What a destination may need from the hub: its name and its validated hub-file block
    (`config.fields`, `config.mode`, `config.on_qualified`, …)."""

    name: str
    config: DestinationSettings
    base_dir: Path = Path(".")


@dataclass(frozen=True)
class WriteItem:
    """One lead's values to write: `record_id` is the destination's id, None when new.

    `values` maps CRM field → value. `lead_fields` (CRM field → value, from the block's
    `lead_fields:`) is filled only when `record_id` is None, i.e. when the record may be created.
    `deleted_ids` (also only when `record_id` is None) are the lead's records in the destination's
    system that a pull saw deleted there (deleted, or merged away): such a lead must not be created
    again, though a destination may follow a merge to the surviving record.
    """

    lead_id: int
    record_id: str | None
    values: Mapping[str, Any]
    lead_fields: Mapping[str, Any] = field(default_factory=dict)
    email: str | None = None
    deleted_ids: tuple[str, ...] = ()


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

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        """Write one batch (at most `batch_size` items); return one outcome per item.

        Writes must be idempotent (set values by record id or email): after a crash between
        sending and recording, the outbox sends the same batch again.
        """
        ...


@dataclass(frozen=True)
class QualifiedItem:
    """A lead that crossed the qualified threshold, for the destination's `on_qualified` action.

    `subject`, `body` and `due_at` are rendered from the block's `on_qualified:` settings;
    `record_id` is None only for destinations that keep no record ids (e.g. webhook).
    """

    lead_id: int
    record_id: str | None
    event_id: int
    email: str | None
    values: Mapping[str, Any]
    subject: str
    body: str
    due_at: datetime | None = None


@runtime_checkable
class QualifiedActions(Protocol):
    """A destination that can act on qualified crossings (e.g. create a follow-up task)."""

    def on_qualified(self, batch: Sequence[QualifiedItem]) -> list[WriteOutcome]:
        """Act once for each item; outcomes as for `write` (retry: tried again next push)."""
        ...


class Connector(Protocol):
    """What an entry point in `leadhub.connectors` must resolve to."""

    name: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def source(self, settings: Any, context: SourceContext) -> Source: ...


class DestinationConnector(Protocol):
    """A connector that writes back. Its block's own keys (everything but the write-back keys
    of `DestinationSettings`) are validated by `destination_settings_model`, or by
    `settings_model` when it has none."""

    name: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def destination(self, settings: Any, context: DestinationContext) -> Destination: ...


_BROKEN: dict[str, str] = {}


def load_connectors() -> dict[str, Any]:
    """Every connector registered under the `leadhub.connectors` entry-point group.

    A plugin that fails to import is left out (and named when someone asks for it), so one broken
    third-party connector does not take the whole hub down.
    """
    found: dict[str, Any] = {}
    for ep in entry_points(group="leadhub.connectors"):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a plugin's import error is its own, not the hub's
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"
            logging.getLogger("leadhub.connectors").warning(
                "connector %r could not be loaded: %s", ep.name, exc
            )
    return found


def get_connector(name: str) -> Any:
    connectors = load_connectors()
    if name not in connectors:
        if name in _BROKEN:
            raise ConfigError(
                f"connector {name!r} is installed but failed to load: {_BROKEN[name]}"
            )
        known = ", ".join(sorted(connectors)) or "none installed"
        raise ConfigError(f"unknown connector {name!r} (known: {known})")
    return connectors[name]

"""The connector contract: sources yield pages of records, destinations write batches.

    Connector            an entry point in `leadhub.connectors` (`connectors.base.registry`)
    ├── SourceConnector       .source(settings, SourceContext) → Source
    │     Source.streams() → Stream.read(cursor) → Page(items, cursor)
    └── DestinationConnector  .destination(settings, DestinationContext) → Destination
          Destination.prepare(); Destination.write(WriteItem batch) → WriteOutcome per item;
          optionally QualifiedActions.on_qualified(QualifiedItem batch)

Shared behaviour lives once: retries, rate budgets and error classification in `core.http`, paging
and bookmarks in `connectors.base.paging`, the destination block in `connectors.base.settings`,
and here what every vendor does alike: settings validators (`http_url`, `lead_field_targets`,
`not_blank`), errors named after their block (`named`), calls of at most N (`batched`), and
batch outcomes (`addressable`, `same_outcome`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from connectors.base.settings import DestinationSettings
from core.errors import HTTPError
from core.records import LEAD_FIELDS, ActivityRecord, LeadRecord, OutcomeRecord

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
    # About how many records the stream still holds after this page, when the source can tell
    # without reading them (a CSV file counts its lines): progress shows the time left from it.
    left: int | None = None


# -- what every connector does the same way ------------------------------------------------------


def http_url(value: str | None) -> str | None:
    """A settings validator: `value` must be an http(s) URL with a host; a trailing `/` goes."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def lead_field_targets(value: dict[str, str]) -> dict[str, str]:
    """A settings validator: every vendor field of a `fields:` map names a lead field."""
    for key, target in value.items():
        if target not in LEAD_FIELDS:
            known = ", ".join(LEAD_FIELDS)
            raise ValueError(f"{key}: {target!r} is not a lead field (known: {known})")
    return value


def not_blank(value: SecretStr) -> SecretStr:
    """A settings validator: a secret (token, client secret) must not be empty or blank."""
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


E = TypeVar("E", bound=HTTPError)


def named(error: E, where: str) -> E:
    """The same error (type, status, body, retry_after) with the connector block named first."""
    renamed = copy.copy(error)
    renamed.args = (f"{where}: {error}",)
    return renamed


T = TypeVar("T")


def batched(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`values` in runs of at most `size`, in order (a vendor's limit on one call)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


@runtime_checkable
class Stream(Protocol):
    """One kind of record of a source (`contacts`, `email_events`, …), read from a bookmark on.

    A stream names its paginator and its `replication_key`; `connectors.base.paging` pages
    through the vendor and moves the bookmark.
    """

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
    # The time its read windows are measured from (seconds since the epoch), where a source
    # measures them from "now": real time when None; a replayed world's day in `leadhub demo`.
    clock: Callable[[], float] | None = None


@runtime_checkable
class Source(Protocol):
    """One configured source: its name in the hub file and its streams."""

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


class _ForLead(Protocol):
    @property
    def lead_id(self) -> int: ...


L = TypeVar("L", bound=_ForLead)


def same_outcome(
    items: Iterable[_ForLead], status: Literal["ok", "retry", "rejected"], reason: str
) -> dict[int, WriteOutcome]:
    """One outcome for every item of a batch (the whole call was refused, or must wait)."""
    return {i.lead_id: WriteOutcome(i.lead_id, status, reason=reason) for i in items}


def addressable(
    batch: Sequence[L],
    has_key: Callable[[L], object],
    reason: str,
    outcomes: dict[int, WriteOutcome],
) -> list[L]:
    """The items the vendor can address (`has_key`: an email, a record id); each other item is
    rejected into `outcomes` with `reason`."""
    ready = [item for item in batch if has_key(item)]
    outcomes.update(same_outcome((i for i in batch if not has_key(i)), "rejected", reason))
    return ready


class Connector(Protocol):
    """What an entry point in `leadhub.connectors` resolves to: a class the hub instantiates.

    Its hub-file block is validated by `settings_model`; it reads (`SourceConnector`), writes back
    (`DestinationConnector`), or both.
    """

    name: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]


@runtime_checkable
class SourceConnector(Connector, Protocol):
    """A connector that reads: its `source` builds the Source of one validated block."""

    def source(self, settings: Any, context: SourceContext) -> Source: ...


@runtime_checkable
class DestinationConnector(Connector, Protocol):
    """A connector that writes back. Its block's own keys (everything but the write-back keys
    of `DestinationSettings`) are validated by a `destination_settings_model` class attribute
    when it has one, else by `settings_model`."""

    def destination(self, settings: Any, context: DestinationContext) -> Destination: ...

"""CSV file source: `leads`, `activities` and `outcomes` files into normalized records.

Default headers are the record field names; `columns:` maps other headers onto fields, and every
other column goes to `custom` (leads) or `properties` (activities). A bad row is quarantined with
its file, line and reason; the other rows import. The cursor is the last line read plus a
fingerprint of the file, so a changed file is read again from the top (upserts make that harmless).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from connectors.base import ConnectorSettings, Cursor, Invalid, Item, Page, SourceContext
from core.errors import ConfigError
from core.records import (
    LEAD_FIELDS,
    ActivityRecord,
    LeadRecord,
    OutcomeRecord,
    describe_validation_error,
    normalize_email,
)

Kind = Literal["leads", "activities", "outcomes"]
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "leads": ("external_id", *LEAD_FIELDS, "updated_at"),
    "activities": ("external_id", "lead", "type", "occurred_at"),
    "outcomes": ("external_id", "lead", "status", "closed_at", "amount"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "leads": (),
    "activities": ("lead", "type", "occurred_at"),
    "outcomes": ("lead", "status"),
}


class CsvSettings(ConnectorSettings):
    """The block of a CSV source in the hub file.

    Parameters:
        leads / activities / outcomes: file paths, relative to the hub file.
        columns: CSV header → record field, for all three files.
        delimiter, encoding: how the files are written (a UTF-8 BOM is always accepted).
        page_size: rows per page (each page commits with its cursor).
        channel: the channel of leads whose file has no channel column.
        skip_values: cell values meaning "not given", e.g. `Select`.
    """

    connector: Literal["csv"] = "csv"
    leads: Path | None = None
    activities: Path | None = None
    outcomes: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    page_size: int = Field(default=1000, ge=1, le=100_000)
    channel: str | None = None
    skip_values: list[str] = Field(default_factory=list)

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be a single character")
        return value


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    with path.open("rb") as handle:
        head = handle.read(65536)
    return hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:".encode() + head).hexdigest()[:16]


@dataclass
class CsvStream:
    """One file of a CSV source."""

    name: Kind
    source: str
    path: Path
    settings: CsvSettings

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        if not self.path.is_file():
            raise ConfigError(f"source {self.source!r}: `{self.name}` file {self.path} not found")
        fingerprint = _fingerprint(self.path)
        after = cursor.get("line", 0) if cursor and cursor.get("file") == fingerprint else 0
        with self.path.open(encoding=self.settings.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=self.settings.delimiter)
            header = next(reader, None)
            if header is None:
                return
            fields = self._fields(header)
            page: list[Item] = []
            line = 1
            for row in reader:
                line = reader.line_num
                if line <= after or not any(cell.strip() for cell in row):
                    continue
                page.append(self._item(fields, row, line))
                if len(page) >= self.settings.page_size:
                    yield Page(page, {"file": fingerprint, "line": line})
                    page = []
            if page or line > after:
                yield Page(page, {"file": fingerprint, "line": max(line, after)})

    def _fields(self, header: Sequence[str]) -> list[str | None]:
        """The record field (or extra key) of each column; None for an unnamed column."""
        fields: list[str | None] = []
        for name in header:
            name = name.strip()
            fields.append(self.settings.columns.get(name, name) or None)
        missing = [f for f in REQUIRED[self.name] if f not in fields]
        if missing:
            raise ConfigError(
                f"source {self.source!r}: {self.path} has no column for {', '.join(missing)} "
                f"(map one with `sources.{self.source}.columns`)"
            )
        return fields

    def _item(self, fields: list[str | None], row: list[str], line: int) -> Item:
        ref = f"{self.path.name}:{line}"
        raw = _raw(row, self.settings.delimiter)
        if len(row) > len(fields) and any(c.strip() for c in row[len(fields) :]):
            return Invalid(raw, f"{ref}: {len(row)} cells for {len(fields)} columns", ref)
        skip = set(self.settings.skip_values)
        values: dict[str, Any] = {}
        for field, cell in zip(fields, row, strict=False):
            cell = cell.strip()
            if field is not None and cell and cell not in skip:
                values[field] = cell
        try:
            return self._record(values)
        except ValidationError as exc:
            return Invalid(raw, f"{ref}: {describe_validation_error(exc)}", ref)

    def _record(self, values: dict[str, Any]) -> LeadRecord | ActivityRecord | OutcomeRecord:
        known = RECORD_FIELDS[self.name]
        base = {k: v for k, v in values.items() if k in known}
        extra = {k: v for k, v in values.items() if k not in known}
        if self.name == "leads":
            base.setdefault("external_id", normalize_email(base.get("email")) or "")
            if self.settings.channel:
                base.setdefault("channel", self.settings.channel)
            return LeadRecord(source=self.source, custom=extra, **base)
        if self.name == "activities":
            base.setdefault("external_id", _row_id(values))
            return ActivityRecord(source=self.source, properties=extra, **base)
        base.setdefault("external_id", base.get("lead", ""))
        return OutcomeRecord(source=self.source, **base)


def _raw(row: list[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(row)
    return out.getvalue()


def _row_id(values: dict[str, Any]) -> str:
    """A stable id for an activity row without one, so a replay upserts instead of duplicating."""
    text = "\x1f".join(f"{k}={values[k]}" for k in sorted(values))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class CsvSource:
    name: str
    settings: CsvSettings
    base_dir: Path

    def streams(self) -> list[CsvStream]:
        found = []
        for kind in ("leads", "activities", "outcomes"):
            path = getattr(self.settings, kind)
            if path is not None:
                full = path if path.is_absolute() else self.base_dir / path
                found.append(CsvStream(kind, self.name, full, self.settings))
        if not found:
            raise ConfigError(
                f"source {self.name!r}: set at least one of leads, activities, outcomes"
            )
        return found


class CsvConnector:
    """The `csv` connector: a source only."""

    name = "csv"
    settings_model = CsvSettings

    def source(self, settings: CsvSettings, context: SourceContext) -> CsvSource:
        return CsvSource(context.name, settings, context.base_dir)

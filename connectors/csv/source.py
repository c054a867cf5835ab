"""CSV file source: `leads`, `activities` and `outcomes` files into normalized records.

Default headers are the record field names (matched ignoring case, with spaces or hyphens for
underscores: `First Name` is `first_name`); `columns:` maps any other header onto a field. Every
other column goes to `custom` (leads) or `properties` (activities); outcome files ignore them.

A bad row is quarantined as its raw text with `<file>:<line>: <field>: <message>`; the other rows
import, including a row with bytes the configured `encoding` cannot decode (a file pasted
together from exports of different tools; its raw text shows them as `\\xNN`). A missing file,
a header without a required column or a header that does not decode is a ConfigError. The cursor
is the last file line consumed plus a fingerprint of the file: a changed file is read again from
the top, which is harmless because every record upserts on `(source, external_id)`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import Field, ValidationError, field_validator, model_validator

from connectors.base.contract import ConnectorSettings, Cursor, Invalid, Item, Page, SourceContext
from core.errors import ConfigError
from core.records import (
    LEAD_FIELDS,
    ActivityRecord,
    LeadRecord,
    OutcomeRecord,
    describe_validation_error,
    normalize_email,
)

log = logging.getLogger("leadhub.connectors.csv")

Kind = Literal["leads", "activities", "outcomes"]
KINDS: tuple[Kind, ...] = ("leads", "activities", "outcomes")
RECORD_FIELDS: dict[Kind, tuple[str, ...]] = {
    "leads": ("external_id", *LEAD_FIELDS, "updated_at"),
    "activities": ("external_id", "lead", "type", "occurred_at"),
    "outcomes": ("external_id", "lead", "status", "closed_at", "amount"),
}
# Each group is a column the header must have; a lead needs an external_id or an email.
REQUIRED: dict[Kind, tuple[tuple[str, ...], ...]] = {
    "leads": (("external_id", "email"),),
    "activities": (("lead",), ("type",), ("occurred_at",)),
    "outcomes": (("lead",), ("status",)),
}
FINGERPRINT_BYTES = 64 * 1024


class CsvSettings(ConnectorSettings):
    """The block of a CSV source in the hub file.

    Parameters:
        leads, activities, outcomes: file paths, relative to the hub file; at least one.
        columns: CSV header → record field (or custom key), applied to all three files.
        delimiter: the cell separator, one character.
        encoding: the files' text encoding; a UTF-8 byte order mark is always accepted.
        page_size: rows per page (each page is stored together with its cursor).
        channel: the channel of leads whose row names none.
        skip_values: cell values meaning "not given", e.g. `Select` (compared ignoring case).
    """

    connector: Literal["csv"] = "csv"
    leads: Path | None = None
    activities: Path | None = None
    outcomes: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8"
    page_size: int = Field(default=1000, ge=1, le=100_000)
    channel: str | None = None
    skip_values: list[str] = Field(default_factory=list)

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1 or value in '\r\n"':
            raise ValueError("must be a single character other than a quote or a line break")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value

    @field_validator("columns")
    @classmethod
    def _named_columns(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned = {header.strip(): field.strip() for header, field in value.items()}
        if any(not header or not field for header, field in cleaned.items()):
            raise ValueError("headers and field names must not be empty")
        return cleaned

    @model_validator(mode="after")
    def _some_file(self) -> CsvSettings:
        if self.leads is None and self.activities is None and self.outcomes is None:
            raise ValueError("set at least one of leads, activities, outcomes")
        return self

    def input_files(self, base_dir: Path) -> dict[Kind, Path]:
        """The files this source reads by setting name, relative paths resolved on `base_dir`."""
        found: dict[Kind, Path] = {}
        for kind in KINDS:
            path: Path | None = getattr(self, kind)
            if path is not None:
                path = path.expanduser()
                found[kind] = path if path.is_absolute() else base_dir / path
        return found

    def text_encoding(self) -> str:
        """The codec to open files with: UTF-8 becomes `utf-8-sig` so that a BOM is dropped."""
        return "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding


class _LineTap:
    """Feeds the csv reader one physical line at a time and keeps the lines of the current row,
    so that a quarantined row is stored as the text the file holds, not a re-encoding of it."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def pop(self) -> str:
        """The text of the lines read since the last pop, without the final line break."""
        text = "".join(self._taken)
        self._taken.clear()
        return text.rstrip("\r\n")


@dataclass(frozen=True)
class _Layout:
    """What a file's header says about each row: the field of each column, the cells a row must
    have (up to the last named column), and the cell values that count as missing."""

    columns: list[str | None]
    width: int
    skip: frozenset[str]

    @classmethod
    def of(cls, columns: list[str | None], skip_values: Iterable[str]) -> _Layout:
        width = max(i for i, c in enumerate(columns) if c is not None) + 1
        return cls(columns, width, frozenset(v.strip().casefold() for v in skip_values))


@dataclass(frozen=True)
class CsvStream:
    """One file of a CSV source; its cursor is `{"line": N, "fingerprint": …}`."""

    name: Kind
    source: str
    path: Path
    settings: CsvSettings

    @property
    def setting(self) -> str:
        """Where this file is named in the hub file, for error messages."""
        return f"sources.{self.source}.{self.name}"

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of `page_size` rows after the cursor's line (every row if the file changed)."""
        fingerprint = self._fingerprint()
        after = _resume_line(cursor, fingerprint)
        if cursor and cursor.get("line") and not after:
            log.info("%s changed since the last read; reading it from the top", self.path)
        # surrogateescape: an undecodable byte becomes one marker character in its row, so that
        # row is quarantined while the rest of the file imports.
        encoding = self.settings.text_encoding()
        lines = _count_lines(self.path)
        with self.path.open(encoding=encoding, errors="surrogateescape", newline="") as handle:
            items = self._items(handle, after)
            yield from _pages(items, self.settings.page_size, fingerprint, lines)

    def _fingerprint(self) -> str:
        """Size, modification time and the first bytes: any edit or replacement changes it."""
        try:
            stat = self.path.stat()
            with self.path.open("rb") as handle:
                head = handle.read(FINGERPRINT_BYTES)
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.setting}: file {self.path} not found") from exc
        except OSError as exc:
            raise ConfigError(f"{self.setting}: cannot read {self.path}: {exc.strerror}") from exc
        digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:".encode() + head)
        return digest.hexdigest()[:16]

    def _items(self, handle: TextIO, after: int) -> Iterator[tuple[int, Item]]:
        """(last line of the row, record or Invalid) for each non-blank row after line `after`."""
        tap = _LineTap(handle)
        reader = csv.reader(tap, delimiter=self.settings.delimiter)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ConfigError(f"{self.setting}: {self.path}: unreadable header: {exc}") from exc
        if header is None:
            return
        undecodable = _undecodable(tap.pop())
        if undecodable:
            raise ConfigError(
                f"{self.setting}: {self.path}: the header is not valid {self.settings.encoding} "
                f"(bytes {undecodable}); set `sources.{self.source}.encoding` to its encoding"
            )
        layout = _Layout.of(self._columns(header), self.settings.skip_values)
        while True:
            start = reader.line_num + 1
            try:
                row, failure = next(reader), ""
            except StopIteration:
                return
            except csv.Error as exc:
                # The reader starts afresh on the next line, so a broken row costs only itself.
                row, failure = [], f"row: {exc}"
            raw, ref = tap.pop(), f"{self.path.name}:{start}"
            if reader.line_num <= after or not (failure or any(cell.strip() for cell in row)):
                continue
            undecodable = _undecodable(raw)
            if undecodable:
                failure = (
                    f"row: bytes {undecodable} are not valid {self.settings.encoding} "
                    f"(see `sources.{self.source}.encoding`)"
                )
                raw = _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", raw)
            if failure:
                yield reader.line_num, Invalid(raw, f"{ref}: {failure}", ref)
            else:
                yield reader.line_num, self._item(layout, row, raw, ref)

    def _columns(self, header: Sequence[str]) -> list[str | None]:
        """The record field (or extra key) of each column; None for a column without a name."""
        known = {_plain(f): f for f in RECORD_FIELDS[self.name]}
        columns: list[str | None] = []
        for index, cell in enumerate(header):
            name = cell.strip().lstrip("\ufeff").strip() if index == 0 else cell.strip()
            if not name:
                columns.append(None)
                continue
            target = self.settings.columns.get(name, name)
            columns.append(known.get(_plain(target), target))
        fields = [c for c in columns if c is not None and c in known.values()]
        doubled = sorted({f for f in fields if fields.count(f) > 1})
        if doubled:
            raise ConfigError(
                f"{self.setting}: {self.path}: several columns map to {', '.join(doubled)}; "
                f"keep one (rename the others with `sources.{self.source}.columns`)"
            )
        for group in REQUIRED[self.name]:
            if not any(field in columns for field in group):
                raise ConfigError(
                    f"{self.setting}: {self.path} has no {' or '.join(group)} column "
                    f"(header: {', '.join(h.strip() for h in header)}); "
                    f"map one with `sources.{self.source}.columns`"
                )
        return columns

    def _item(self, layout: _Layout, row: list[str], raw: str, ref: str) -> Item:
        columns = layout.columns
        # Cells past the header are tolerated only when empty (a trailing delimiter).
        if len(row) < layout.width or any(cell.strip() for cell in row[len(columns) :]):
            reason = f"{ref}: row: {len(row)} cells where the header has {len(columns)}"
            return Invalid(raw, reason, ref)
        values: dict[str, str] = {}
        for column, cell in zip(columns, row, strict=False):
            cell = cell.strip()
            if column is not None and cell and cell.casefold() not in layout.skip:
                values.setdefault(column, cell)
        try:
            return self._record(values)
        except _MissingKey as exc:
            return Invalid(raw, f"{ref}: {exc}", ref)
        except ValidationError as exc:
            return Invalid(raw, f"{ref}: {describe_validation_error(exc)}", ref)

    def _record(self, values: dict[str, str]) -> Item:
        known = RECORD_FIELDS[self.name]
        base: dict[str, Any] = {k: v for k, v in values.items() if k in known}
        extra = {k: v for k, v in values.items() if k not in known}
        if self.name == "leads":
            if "external_id" not in base:
                # Without an id the email is the key, so a re-import updates the same lead.
                base["external_id"] = normalize_email(base.get("email"))
                if not base["external_id"]:
                    raise _MissingKey("external_id: missing, and no email to use instead")
            if self.settings.channel:
                base.setdefault("channel", self.settings.channel)
            return LeadRecord(source=self.source, custom=extra, **base)
        if self.name == "activities":
            base.setdefault("external_id", row_id(values))
            return ActivityRecord(source=self.source, properties=extra, **base)
        if "status" in base:
            base["status"] = base["status"].lower()
        base.setdefault("external_id", base.get("lead", ""))
        return OutcomeRecord(source=self.source, **base)


class _MissingKey(ValueError):
    """A row gives nothing to key its record by."""


def row_id(values: dict[str, str]) -> str:
    """A stable id for an activity row without one, so a replay upserts instead of duplicating.

    It hashes the row's mapped cells, so reordering the file's columns or rows keeps the ids.
    """
    text = "\x1f".join(f"{key}\x1e{values[key]}" for key in sorted(values))
    return "row-" + hashlib.sha256(text.encode()).hexdigest()[:24]


# What `surrogateescape` makes of an undecodable byte: U+DC80..U+DCFF for bytes 0x80..0xFF.
_SURROGATE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> str:
    """The bytes that did not decode, as `0xe9, 0xfc` (up to five), or "" when all did."""
    found = list(dict.fromkeys(f"0x{ord(c) - 0xDC00:02x}" for c in _SURROGATE.findall(text)))
    return ", ".join(found[:5]) + (", …" if len(found) > 5 else "")


def _plain(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _resume_line(cursor: Cursor | None, fingerprint: str) -> int:
    """The line to resume after: 0 without a cursor or when the file is not the one it read."""
    if not cursor or cursor.get("fingerprint") != fingerprint:
        return 0
    line = cursor.get("line")
    return line if isinstance(line, int) and line > 0 else 0


def _pages(
    items: Iterator[tuple[int, Item]], size: int, fingerprint: str, lines: int
) -> Iterator[Page]:
    """Pages of `size` items; each says how many of the file's `lines` are left after it."""
    page: list[Item] = []
    last = 0
    for last, item in items:
        page.append(item)
        if len(page) >= size:
            yield Page(page, {"line": last, "fingerprint": fingerprint}, max(0, lines - last))
            page = []
    if page:
        yield Page(page, {"line": last, "fingerprint": fingerprint}, max(0, lines - last))


def _count_lines(path: Path) -> int:
    """The file's lines, counted in its bytes (a second a gigabyte): rows left after a page,
    exact unless quoted values span lines or rows are blank."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines if last == b"\n" else lines + 1


@dataclass(frozen=True)
class CsvSource:
    """The files of one CSV source; a stream per configured file."""

    name: str
    settings: CsvSettings
    base_dir: Path

    def streams(self) -> list[CsvStream]:
        files = self.settings.input_files(self.base_dir)
        return [CsvStream(kind, self.name, files[kind], self.settings) for kind in files]


class CsvConnector:
    """The `csv` connector: a source only."""

    name = "csv"
    settings_model = CsvSettings

    def source(self, settings: CsvSettings, context: SourceContext) -> CsvSource:
        return CsvSource(context.name, settings, context.base_dir)

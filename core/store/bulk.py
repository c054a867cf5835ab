"""Bulk writes: on PostgreSQL a large batch goes by COPY, one stream instead of a statement per
row (psycopg's executemany sends one per row); elsewhere, or for a few rows, plain INSERTs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.tables import UTCDateTime

COPY_FROM = 200  # rows from which PostgreSQL gets them by COPY rather than INSERT statements


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows; on PostgreSQL a large batch goes by COPY, one stream instead of a
    statement per row."""
    if conn.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        conn.execute(table.insert(), rows)
        return
    copy_rows(conn, table, rows)


def copy_rows(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], into: str | None = None
) -> None:
    """COPY `rows` (typed as `table`'s columns) into `into` (default: `table`)."""
    columns = list(rows[0])
    convert = [_copy_value(table.c[name].type) for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {into or table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([f(row[name]) for f, name in zip(convert, columns, strict=True)])
    cursor.close()


def _copy_value(kind: Any) -> Callable[[Any], Any]:
    """How a column's value is written by COPY: JSON as text, times as naive UTC."""
    if isinstance(kind, sa.JSON):
        return lambda value: json.dumps(value)
    if isinstance(kind, UTCDateTime):
        return lambda value: kind.process_bind_param(value, None)
    return lambda value: value

"""Bulk writes: on PostgreSQL a large batch goes by COPY, one stream instead of a statement per
row (psycopg's executemany sends one per row); on SQLite a large batch goes to the driver's
executemany with each column's value converted once, without building statement parameters per
row; for a few rows, plain statements.

A JSON value that many rows share can be serialised once: a `Serialized` list carries its text,
which the bulk paths write as it is (elsewhere it is an ordinary list)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.tables import UTCDateTime

COPY_FROM = 200  # rows from which PostgreSQL gets them by COPY rather than INSERT statements


class Serialized(list[Any]):
    """A JSON array with its text, serialised once for every row that holds it."""

    __slots__ = ("text",)

    def __init__(self, items: Sequence[Any]) -> None:
        super().__init__(items)
        self.text = json.dumps(self)


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows; a large batch goes by COPY on PostgreSQL, straight to the driver's
    executemany on SQLite."""
    if len(rows) < COPY_FROM:
        conn.execute(table.insert(), rows)
    elif conn.dialect.name == "postgresql":
        copy_rows(conn, table, rows)
    elif conn.dialect.name == "sqlite" and not _callable_defaults(table, rows[0]):
        _executemany_insert(conn, table, rows)
    else:
        conn.execute(table.insert(), rows)


def update_rows(
    conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]], into: str = "_id"
) -> None:
    """UPDATE `table` SET the rows' other columns WHERE column `key` equals the row's `into`; a
    large batch on SQLite goes straight to the driver's executemany."""
    columns = [k for k in rows[0] if k != into]
    if conn.dialect.name == "sqlite" and len(rows) >= COPY_FROM:
        convert = [_bind(conn, table.c[name].type) for name in (*columns, key)]
        assignments = ", ".join(f'"{name}" = ?' for name in columns)
        sql = f'UPDATE {table.name} SET {assignments} WHERE "{key}" = ?'
        names = (*columns, into)
        _executemany(conn, sql, convert, names, rows)
        return
    conn.execute(
        table.update()
        .where(table.c[key] == sa.bindparam(into))
        .values({k: sa.bindparam(k) for k in columns}),
        rows,
    )


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
        return _json_text(json.dumps)
    if isinstance(kind, UTCDateTime):
        return lambda value: kind.process_bind_param(value, None)
    return lambda value: value


def _json_text(serialise: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: value.text if isinstance(value, Serialized) else serialise(value)


def _bind(conn: Connection, kind: Any) -> Callable[[Any], Any] | None:
    """The dialect's conversion of a value of `kind` for the driver (None: as it is)."""
    process = kind._cached_bind_processor(conn.dialect)
    if isinstance(kind, sa.JSON) and process is not None:
        return _json_text(process)
    return process  # type: ignore[no-any-return]


def _callable_defaults(table: sa.Table, row: dict[str, Any]) -> bool:
    """Whether a column the rows leave out takes a default computed per row (left to the
    SQL expression path)."""
    return any(
        c.name not in row and c.default is not None and not c.default.is_scalar
        for c in table.columns
    )


def _executemany_insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    given = list(rows[0])
    # columns left out with a constant default get it, as an INSERT statement gives them
    defaults = {
        c.name: c.default.arg  # type: ignore[attr-defined]
        for c in table.columns
        if c.name not in given and c.default is not None and c.default.is_scalar
    }
    names = (*given, *defaults)
    convert = [_bind(conn, table.c[name].type) for name in names]
    columns = ", ".join(f'"{name}"' for name in names)
    marks = ", ".join("?" for _ in names)
    sql = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
    if defaults:
        rows = [{**row, **defaults} for row in rows]
    _executemany(conn, sql, convert, names, rows)


def _executemany(
    conn: Connection,
    sql: str,
    convert: Sequence[Callable[[Any], Any] | None],
    names: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    pairs = list(zip(convert, names, strict=True))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            sql, [[row[n] if f is None else f(row[n]) for f, n in pairs] for row in rows]
        )
    finally:
        cursor.close()

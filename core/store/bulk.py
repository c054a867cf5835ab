"""Bulk writes and lookups: on PostgreSQL a large batch goes by COPY (new rows) or one
`UPDATE … FROM unnest` (changed rows), one statement instead of one per row (psycopg's executemany
sends one per row), and a lookup by many keys takes them as one array; elsewhere, or for a few
rows, plain statements and IN lists."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from core.store.tables import UTCDateTime

COPY_FROM = 200  # rows from which PostgreSQL gets them by COPY rather than INSERT statements
T = TypeVar("T")


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


LOOKUP_BATCH = 500  # keys per IN list, where a lookup cannot take them all as one array
ARRAY_BATCH = 50_000  # keys per array parameter on PostgreSQL: bounds one statement's size


def key_batches(conn: Connection, keys: Sequence[T]) -> Iterator[Sequence[T]]:
    """`keys` in the batches `one_of` looks up: on PostgreSQL as many as one array parameter
    takes (one statement per page), elsewhere IN lists of `LOOKUP_BATCH`."""
    size = ARRAY_BATCH if conn.dialect.name == "postgresql" else LOOKUP_BATCH
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def one_of(conn: Connection, column: sa.ColumnElement[Any], keys: Sequence[Any]) -> Any:
    """`column IN keys`; on PostgreSQL `column = ANY(array)`: one parameter however many keys,
    so the client builds no statement of thousands of placeholders and the server parses none."""
    if conn.dialect.name != "postgresql":
        return column.in_(keys)
    # an array of the column's kind without its length: a cast to VARCHAR(n) would cut a longer
    # key to n characters, and the cut key could match another row
    kind = sa.String() if getattr(column.type, "length", None) else column.type
    return column == sa.any_(sa.bindparam(None, list(keys), type_=postgresql.ARRAY(kind)))


def update_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE `table` row by row: each row names its `id` as `_id` and the columns to set, the
    same columns in every row. On PostgreSQL a large batch is one statement over arrays
    (`UPDATE … FROM unnest(…)`) instead of a statement per row."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != "_id"]
    if conn.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        conn.execute(
            table.update()
            .where(table.c.id == sa.bindparam("_id"))
            .values({name: sa.bindparam(name) for name in columns}),
            rows,
        )
        return
    # in id order, as executemany would lock them: concurrent writers take rows in one order
    rows = sorted(rows, key=lambda row: row["_id"])
    dialect = conn.dialect
    names = ["id", *columns]
    kinds = [table.c[name].type for name in names]
    convert = [_copy_value(kind) for kind in kinds]
    # Every array goes as text and is cast by the server: one kind of list for psycopg to send
    # (a column's values may mix ints and floats, or be all NULL).
    arrays = {
        f"a{i}": [None if row[key] is None else _text(f(row[key])) for row in rows]
        for i, (f, key) in enumerate(zip(convert, ["_id", *columns], strict=True))
    }
    typed = ", ".join(
        f"%(a{i})s::{kind.compile(dialect=dialect)}[]" for i, kind in enumerate(kinds)
    )
    sets = ", ".join(f'"{name}" = v."{name}"' for name in columns)
    aliases = ", ".join(f'"{name}"' for name in names)
    conn.exec_driver_sql(
        f"UPDATE {table.name} SET {sets} FROM unnest({typed}) AS v({aliases}) "
        f"WHERE {table.name}.id = v.id",
        arrays,
    )


def _text(value: Any) -> str:
    """A value as PostgreSQL's input syntax reads it (the value already as COPY writes it)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)

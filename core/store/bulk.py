"""Bulk writes and lookups. On PostgreSQL a large batch goes by COPY (new rows) or one
`UPDATE … FROM unnest` (changed rows), one statement instead of one per row (psycopg's executemany
sends one per row), and a lookup by many keys takes them as one array. On SQLite a large batch goes
to the driver's executemany with each column's value converted once, without building statement
parameters per row. For a few rows, plain statements and IN lists.

A JSON value that many rows share can be serialised once: a `Serialized` list carries its text,
which the bulk paths write as it is (elsewhere it is an ordinary list)."""

from __future__ import annotations

import collections
import functools
import json
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from core.store.tables import UTCDateTime

COPY_FROM = 200  # rows from which PostgreSQL gets them by COPY rather than INSERT statements
T = TypeVar("T")


class Serialized(list[Any]):
    """A JSON array with its text, serialised once for every row that holds it."""

    __slots__ = ("text",)

    def __init__(self, items: Sequence[Any]) -> None:
        super().__init__(items)
        self.text = json.dumps(self)

    @classmethod
    def parse(cls, text: str) -> Serialized:
        """The array a JSON text holds (null: an empty one), keeping the text as read."""
        items = json.loads(text)
        if items is None:
            return cls([])
        found = cls.__new__(cls)
        list.__init__(found, items)
        found.text = text
        return found


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
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    key: str = "id",
    into: str = "_id",
) -> None:
    """UPDATE `table` SET the rows' other columns WHERE column `key` equals the row's `into`, the
    same columns in every row. A large batch is one statement over arrays on PostgreSQL
    (`UPDATE … FROM unnest(…)`), and goes straight to the driver's executemany on SQLite."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != into]
    if len(rows) >= COPY_FROM and conn.dialect.name == "postgresql":
        _update_unnest(conn, table, rows, columns, key, into)
        return
    if len(rows) >= COPY_FROM and conn.dialect.name == "sqlite":
        convert = [_bind(conn, table.c[name].type) for name in (*columns, key)]
        assignments = ", ".join(f'"{name}" = ?' for name in columns)
        sql = f'UPDATE {table.name} SET {assignments} WHERE "{key}" = ?'
        _executemany(conn, sql, convert, (*columns, into), rows)
        return
    conn.execute(_update_statement(table, tuple(columns), key, into), rows)


@functools.cache
def _update_statement(table: sa.Table, columns: tuple[str, ...], key: str, into: str) -> sa.Update:
    """`update_rows`' statement for a few rows, built once."""
    return (
        table.update()
        .where(table.c[key] == sa.bindparam(into))
        .values({name: sa.bindparam(name) for name in columns})
    )


def copy_rows(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    into: str | None = None,
    renamed: Mapping[str, str] = MappingProxyType({}),
) -> None:
    """COPY `rows` (typed as `table`'s columns) into `into` (default: `table`); a row's key
    in `renamed` goes into the column it names there."""
    keys = list(rows[0])
    columns = [renamed.get(key, key) for key in keys]
    values = _values_of(keys, [_copy_value(table.c[name].type) for name in columns])
    names = ", ".join(f'"{name}"' for name in columns)
    _begun(conn)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {into or table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(values(row))
    cursor.close()


def _copy_value(kind: Any) -> Callable[[Any], Any] | None:
    """How a column's value is written by COPY: JSON as text, times as naive UTC (None: as
    it is)."""
    if isinstance(kind, sa.JSON):
        return _json_text(json.dumps)
    if isinstance(kind, UTCDateTime):
        return _each_once(lambda value: kind.process_bind_param(value, None))
    return None


def _as_is(convert: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    return (lambda value: value) if convert is None else convert


def _values_of(
    names: Sequence[str], convert: Sequence[Callable[[Any], Any] | None]
) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """What gives a row's values (a mapping) in the order of `names`, each through its
    `convert` (None: as it is): the values picked at once, only the converted ones one by
    one."""
    if len(names) == 1:
        name = names[0]
        pick: Callable[[Mapping[str, Any]], Any] = lambda row: (row[name],)  # noqa: E731
    else:
        pick = operator.itemgetter(*names)
    converted = [(i, f) for i, f in enumerate(convert) if f is not None]
    if not converted:
        return pick

    def values(row: Mapping[str, Any]) -> Sequence[Any]:
        found = list(pick(row))
        for i, f in converted:
            found[i] = f(found[i])
        return found

    return values


def _flag(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A boolean column's conversion, a `bool` (or None) passed as it is: the driver stores
    True and False as the type's conversion would (1 and 0 on SQLite)."""
    return lambda value: value if value is None or value.__class__ is bool else process(value)


def _each_once(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` (of an immutable value: a time) run again only when the value is another
    object than the last one: the rows of a batch mostly share one (`computed_at`)."""
    last: list[Any] = [object(), None]

    def converted(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return converted


LOOKUP_BATCH = 500  # keys per IN list, where a lookup cannot take them all as one array
ARRAY_BATCH = 50_000  # keys per array parameter on PostgreSQL: bounds one statement's size


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """The driver's own cursor on `conn`'s connection (in its transaction), for reads of many
    rows that need no type processing: SQLAlchemy's rows cost seconds a million."""
    _begun(conn)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


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


def any_key(dialect: str, column: sa.ColumnElement[Any], name: str) -> Any:
    """`one_of` for a statement built once: `column IN` the keys given at execution as
    parameter `name`, on PostgreSQL `= ANY` of one array, elsewhere an expanding IN list."""
    if dialect != "postgresql":
        return column.in_(sa.bindparam(name, expanding=True))
    kind = sa.String() if getattr(column.type, "length", None) else column.type
    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(kind)))


def _update_unnest(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    columns: list[str],
    key: str,
    into: str,
) -> None:
    # in id order, as executemany would lock them: concurrent writers take rows in one order
    rows = sorted(rows, key=lambda row: row[into])
    dialect = conn.dialect
    names = [key, *columns]
    kinds = [table.c[name].type for name in names]
    convert = [_as_is(_copy_value(kind)) for kind in kinds]
    # Every array goes as text and is cast by the server: one kind of list for psycopg to send
    # (a column's values may mix ints and floats, or be all NULL).
    arrays = {
        f"a{i}": [None if row[key] is None else _text(f(row[key])) for row in rows]
        for i, (f, key) in enumerate(zip(convert, [into, *columns], strict=True))
    }
    # Text arrays without their length: a cast to VARCHAR(n) would cut a longer value to n
    # characters, where the assignment to the column refuses it, as a statement does.
    casts = [sa.String() if getattr(kind, "length", None) else kind for kind in kinds]
    # `%b`: the arrays go in binary, each text with its length and nothing escaped (in the text
    # format, escaping the quotes of JSON took most of the time).
    typed = ", ".join(
        f"%(a{i})b::{kind.compile(dialect=dialect)}[]" for i, kind in enumerate(casts)
    )
    sets = ", ".join(f'"{name}" = v."{name}"' for name in columns)
    aliases = ", ".join(f'"{name}"' for name in names)
    conn.exec_driver_sql(
        f"UPDATE {table.name} SET {sets} FROM unnest({typed}) AS v({aliases}) "
        f'WHERE {table.name}."{key}" = v."{key}"',
        arrays,
    )


def _text(value: Any) -> str:
    """A value as PostgreSQL's input syntax reads it (the value already as COPY writes it)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_text(serialise: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: value.text if isinstance(value, Serialized) else serialise(value)


def _bind(conn: Connection, kind: Any) -> Callable[[Any], Any] | None:
    """The dialect's conversion of a value of `kind` for the driver (None: as it is)."""
    process = kind._cached_bind_processor(conn.dialect)
    if isinstance(kind, sa.JSON) and process is not None:
        return _json_text(process)
    if isinstance(kind, (sa.DateTime, UTCDateTime)) and process is not None:
        return _each_once(process)
    if isinstance(kind, sa.Boolean) and process is not None:
        return _flag(process)
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
    values = _values_of(names, convert)
    _begun(conn)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, [values(row) for row in rows])
    finally:
        cursor.close()


Read = tuple[Any, Any]  # a statement built once, and its parameters (or a list of them)


def run_together(conn: Connection, statements: Sequence[Read]) -> list[Sequence[Any]]:
    """Run several statements in order, in the caller's transaction, and return the rows of
    each (none for a write without RETURNING). On PostgreSQL they go to the server together and
    their results come back in one round trip (psycopg's pipeline mode) instead of one round
    trip each: the one-lead pass after a webhook is mostly round trips. Elsewhere they run one
    after another.

    The rows are those `conn.execute` gives (each column through its type's result processing)
    as named tuples, with `_mapping` for the code that reads a row as a mapping. A write must
    give every column that has a default on the Python side (they are not applied here), and
    no statement may take an IN list's values at execution (`any_key` takes an array)."""
    if conn.dialect.name != "postgresql":
        results = [conn.execute(query, params) for query, params in statements]
        return [result.all() if result.returns_rows else [] for result in results]
    driver = conn.connection.driver_connection
    if driver is None:  # pragma: no cover - a connection the pool has invalidated
        raise sa.exc.InvalidRequestError("the connection is closed")
    _begun(conn)
    forms = [_driver_form(query, conn.dialect) for query, _ in statements]
    cursors = []
    error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.pipeline():
            for form, (_, params) in zip(forms, statements, strict=True):
                cursor = driver.cursor()
                if isinstance(params, list):  # one statement over each set of parameters
                    cursor.executemany(form.sql, [form.binds(p) for p in params])
                else:
                    cursor.execute(form.sql, form.binds(params))
                cursors.append(cursor)
        return [form.rows(cursor) for form, cursor in zip(forms, cursors, strict=True)]
    except error as exc:
        # as `conn.execute` raises it: SQLAlchemy's class for the error (IntegrityError,
        # OperationalError, ...), without the parameters, and a lost connection invalidated
        lost = conn.dialect.is_disconnect(exc, driver, None)
        if lost:
            conn.invalidate(exc)
        sql = "\n".join(form.sql for form in forms)
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, error, connection_invalidated=lost, dialect=conn.dialect
        ) from exc


_Step = tuple[int, Callable[[Any], Any]]  # a column's place, and its result processing


class _DriverForm:
    """A statement compiled for the driver: its SQL, how its parameters are bound and how its
    rows are built, as `conn.execute` would."""

    def __init__(self, query: Any, dialect: Any) -> None:
        # an IN list given in the statement is rendered as its placeholders here; one whose
        # values come with the parameters cannot be. A write sets the columns it names.
        keys: list[str] | None = [] if isinstance(query, sa.sql.dml.UpdateBase) else None
        try:
            compiled = query.compile(
                dialect=dialect, column_keys=keys, compile_kwargs={"render_postcompile": True}
            )
        except sa.exc.InvalidRequestError as exc:
            message = "run_together takes no expanding parameter given at execution"
            raise ValueError(message) from exc
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            raise ValueError("run_together takes writes that give every column with a default")
        self.sql = compiled.string
        self._compiled = compiled
        self._binds = {
            key: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for bind, key in compiled.bind_names.items()
        }
        self._dialect = dialect
        self._types = [c.type.dialect_impl(dialect) for c in query.exported_columns]
        self._returns = bool(self._types)
        self._shapes: dict[tuple[int, ...], tuple[Callable[..., Any], list[_Step]]] = {}

    def binds(self, params: dict[str, Any]) -> dict[str, Any]:
        values = self._compiled.construct_params(params)
        return {
            key: value if (process := self._binds.get(key)) is None else process(value)
            for key, value in values.items()
        }

    def rows(self, cursor: Any) -> list[Any]:
        """The rows of `cursor`, which ran the statement."""
        if not self._returns:
            return []
        fetched = cursor.fetchall()
        result = cursor.pgresult
        codes = tuple(result.ftype(i) for i in range(result.nfields))
        shape = self._shapes.get(codes)
        if shape is None:  # the processors, given the column types the server sent
            steps = []
            for i, (kind, code) in enumerate(zip(self._types, codes, strict=True)):
                process = kind.result_processor(self._dialect, code)
                if process is not None:
                    steps.append((i, process))
            # named as the SQL labels them, as `conn.execute`'s rows are
            names = tuple(column.name for column in cursor.description)
            shape = self._shapes[codes] = (_row_class(names)._make, steps)
        make, steps = shape
        if not steps:
            return [make(row) for row in fetched]
        built = []
        for row in fetched:
            values = list(row)
            for i, step in steps:
                values[i] = step(values[i])
            built.append(make(values))
        return built


@functools.lru_cache(maxsize=512)  # statements are built once: a few dozen in all
def _driver_form(query: Any, dialect: Any) -> _DriverForm:
    return _DriverForm(query, dialect)


@functools.cache
def _row_class(names: tuple[str, ...]) -> type[Any]:
    base = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
    mapping = property(lambda self: self._asdict())
    return type("Row", (base,), {"__slots__": (), "_mapping": mapping})


def _begun(conn: Connection) -> None:
    """Begin `conn`'s transaction if it has none yet, before its driver connection is used
    directly: what the driver's cursors write is then in the transaction `conn` commits (not
    in one the driver began on its own, which `conn` never commits)."""
    if not conn.in_transaction():
        conn.begin()

"""The SOQL the sandbox understands: enough for a sync, checked as strictly as Salesforce does.

    SELECT Id, Email, ConvertedOpportunity.IsWon FROM Lead
    WHERE SystemModstamp > 2026-10-01T00:00:00Z
       OR (SystemModstamp = 2026-10-01T00:00:00Z AND Id > '00Q…')
    ORDER BY SystemModstamp ASC, Id LIMIT 5000

A field list (standard, custom, one-level relationship fields such as `ConvertedOpportunity.IsWon`
or `Who.Type`, or `COUNT()`), one object, a WHERE of comparisons (`= != <> < <= > >=`, `LIKE`,
`IN`, `NOT IN`, `INCLUDES` is not) joined by AND/OR/NOT and parentheses, ORDER BY with ASC/DESC and
NULLS FIRST/LAST, LIMIT and OFFSET. Datetime literals are unquoted; a quoted one, a date for a
dateTime field or an unknown field is an error with Salesforce's code (INVALID_FIELD,
MALFORMED_QUERY, INVALID_TYPE). String comparisons ignore case, as SOQL's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.salesforce.sandbox.data import Org, Record, id18, stamp
from connectors.salesforce.sandbox.schema import Field

TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<relative>[A-Za-z_]+_N_[A-Za-z_]+:\d+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
# A dateTime literal as SOQL takes it: `Z` or a `±hh:mm` offset, at most milliseconds
# (`+0000`, as query answers write it, and six-digit fractions are refused).
STRICT_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})"
)
MAX_OFFSET = 2000
# Date literals without a number: (first day, days) relative to today.
DATE_LITERALS = {"today": (0, 1), "yesterday": (-1, 1), "tomorrow": (1, 1),
                 "last_90_days": (-90, 91), "next_90_days": (0, 91)}  # fmt: skip


class SoqlError(Exception):
    """A query Salesforce would refuse: `code` is its errorCode (MALFORMED_QUERY, …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Column:
    """A selected (or filtered, or sorted) field: `relation` is set for `Who.Type` and the like."""

    name: str  # as the response names it: `Email`, or `IsWon` under `ConvertedOpportunity`
    field: Field | None  # None for the polymorphic `Type` of a relationship
    relation: Field | None = None
    target: str | None = None  # the related object, when not polymorphic


@dataclass
class Query:
    obj: str
    columns: list[Column]
    count: bool = False
    where: Callable[[Record], bool] | None = None
    order: list[tuple[Column, bool, bool]] = field(default_factory=list)  # column, desc, nulls 1st
    limit: int | None = None
    offset: int = 0


@dataclass
class Tok:
    kind: str
    text: str

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def tokenize(soql: str) -> list[Tok]:
    out, pos, text = [], 0, soql.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SoqlError(
                "MALFORMED_QUERY", f"unexpected token: '{text[pos : pos + 20].strip()}'"
            )
        kind = match.lastgroup or ""
        out.append(Tok(kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class Parser:
    def __init__(self, org: Org, soql: str) -> None:
        self.org, self.tokens, self.pos = org, tokenize(soql), 0
        self.obj = ""

    # -- token helpers
    def peek(self, ahead: int = 0) -> Tok | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return tok

    def accept(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and (tok.word in words or (tok.kind != "word" and tok.text in words)):
            self.pos += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.accept(word):
            got = self.peek()
            raise SoqlError("MALFORMED_QUERY", f"expecting '{word.upper()}', found "
                            f"'{got.text if got else 'end of query'}'")  # fmt: skip

    # -- grammar
    def parse(self) -> Query:
        self.expect("select")
        start = self.pos
        while self.peek() is not None and self.peek().word != "from":  # type: ignore[union-attr]
            self.take()
        select = self.tokens[start : self.pos]
        self.expect("from")
        name = self.take()
        obj = self.org.schema.object(name.text) if name.kind == "word" else None
        if obj is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{name.text}' is not supported. If you "
                            "are attempting to use a custom object, be sure to append the '__c' "
                            "after the entity name.")  # fmt: skip
        self.obj = obj
        query = Query(obj, [])
        self.select_list(query, select)
        if self.accept("where"):
            query.where = self.disjunction()
        if self.accept("order"):
            self.expect("by")
            query.order = self.order_list()
        if self.accept("limit"):
            query.limit = self.integer("LIMIT")
        if self.accept("offset"):
            query.offset = self.integer("OFFSET")
            if query.offset > MAX_OFFSET:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE",
                                f"Maximum SOQL offset allowed is {MAX_OFFSET}")  # fmt: skip
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.take().text}'")
        return query

    def integer(self, what: str) -> int:
        tok = self.take()
        if tok.kind != "number" or not tok.text.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"{what} must be a non-negative integer")
        return int(tok.text)

    def select_list(self, query: Query, tokens: list[Tok]) -> None:
        texts = [t.text for t in tokens]
        if [t.lower() for t in texts] == ["count", "(", ")"]:
            query.count = True
            return
        if not tokens or "(" in texts:
            raise SoqlError("MALFORMED_QUERY", "only plain field lists and COUNT() are supported")
        names = tokens[::2]  # fields and commas alternate
        if (
            len(tokens) % 2 == 0
            or any(t.text != "," for t in tokens[1::2])
            or any(t.text == "," for t in names)
        ):
            raise SoqlError("MALFORMED_QUERY", "malformed field list")
        seen: set[str] = set()
        for tok in names:
            column = self.column(tok.text)
            key = f"{column.relation.name if column.relation else ''}.{column.name}".lower()
            if key in seen:
                raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {tok.text}")
            seen.add(key)
            query.columns.append(column)

    def column(self, text: str) -> Column:
        schema, obj = self.org.schema, self.obj
        if "." not in text:
            found = schema.field(obj, text)
            if found is None:
                raise SoqlError("INVALID_FIELD", f"No such column '{text}' on entity '{obj}'. If "
                                "you are attempting to use a custom field, be sure to append the "
                                "'__c' after the custom field name. Please reference your WSDL or "
                                "the describe call for the appropriate names.")  # fmt: skip
            return Column(found.name, found)
        head, _, rest = text.partition(".")
        relation = schema.relation(obj, head)
        if relation is None or "." in rest:
            raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{head}' in field "
                            f"path. If you are attempting to use a custom relationship, be sure "
                            f"to append the '__r' after the custom relationship name.")  # fmt: skip
        targets = relation.references
        if rest.lower() == "type" and len(targets) > 1:
            return Column("Type", None, relation)
        target = targets[0] if len(targets) == 1 else None
        candidates = [schema.field(t, rest) for t in targets]
        found = next((f for f in candidates if f is not None), None)
        if found is None or (target is None and not all(candidates)):
            raise SoqlError("INVALID_FIELD", f"No such column '{rest}' on entity "
                            f"'{target or relation.relationship}'.")  # fmt: skip
        return Column(found.name, found, relation, target)

    def order_list(self) -> list[tuple[Column, bool, bool]]:
        out = []
        while True:
            column = self.column(self.take().text)
            desc = self.accept("desc")
            if not desc:
                self.accept("asc")
            nulls_first = not desc
            if self.accept("nulls"):
                nulls_first = self.accept("first")
                if not nulls_first:
                    self.expect("last")
            out.append((column, desc, nulls_first))
            if not self.accept(","):
                return out

    def disjunction(self) -> Callable[[Record], bool]:
        parts = [self.conjunction()]
        while self.accept("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Callable[[Record], bool]:
        parts = [self.negation()]
        while self.accept("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def negation(self) -> Callable[[Record], bool]:
        if self.accept("not"):
            inner = self.negation()
            return lambda r: not inner(r)
        if self.accept("("):
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[Record], bool]:
        name = self.take()
        column = self.column(name.text)
        get = self.getter(column)
        negate = self.accept("not")
        if self.accept("in"):
            self.expect("(")
            values = [self.literal(column)]
            while self.accept(","):
                values.append(self.literal(column))
            self.expect(")")
            keys = {_key(v) for v in values}
            return lambda r: (_key(get(r)) in keys) != negate
        if negate:
            raise SoqlError("MALFORMED_QUERY", "NOT must be followed by IN here")
        if self.accept("like"):
            pattern = self.literal(column)
            regex = re.compile(
                "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                        for c in str(pattern)), re.IGNORECASE | re.DOTALL)  # fmt: skip
            return lambda r: get(r) is not None and regex.fullmatch(str(get(r))) is not None
        op = self.take()
        if op.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op.text}'")
        value = _key(self.literal(column))
        return _compare(op.text, get, value)

    def literal(self, column: Column) -> Any:
        tok = self.take()
        kind = column.field.type if column.field else "string"
        prefix = f"{column.relation.relationship}." if column.relation else ""
        label = f"{prefix}{column.name}"
        if tok.word == "null":
            return None
        if kind in ("datetime", "date") and (tok.kind == "relative" or tok.word in DATE_LITERALS):
            return self.relative(tok.text, kind)
        if kind == "datetime":
            if tok.kind == "datetime" and not STRICT_DATETIME.fullmatch(tok.text):
                raise SoqlError("MALFORMED_QUERY", f"line 1:{self.pos} no viable alternative at "
                                f"character: invalid dateTime literal {tok.text}")  # fmt: skip
            if tok.kind != "datetime":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{label}' "
                    "must be of type dateTime and should not be enclosed in quotes",
                )
            return _datetime(tok.text)
        if kind == "date":
            if tok.kind != "date":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{label}' "
                    "must be of type date and should not be enclosed in quotes",
                )
            return date.fromisoformat(tok.text)
        if kind == "boolean":
            if tok.word not in ("true", "false"):
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{label}' "
                    "must be of type boolean and should not be enclosed in quotes",
                )
            return tok.word == "true"
        if kind in ("double", "currency", "percent", "int"):
            if tok.kind != "number":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{label}' "
                    "must be of type double and should not be enclosed in quotes",
                )
            return float(tok.text)
        if tok.kind != "string":
            raise SoqlError("MALFORMED_QUERY", f"Bind variables and unquoted values are not "
                            f"allowed for field '{label}': {tok.text}")  # fmt: skip
        text = re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        if kind in ("id", "reference") and len(text) == 15:
            return id18(text)
        if kind in ("id", "reference") and text and len(text) != 18:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
        return text

    def relative(self, text: str, kind: str) -> DateRange:
        """A date literal (`TODAY`, `LAST_N_DAYS:30`, …) as the range of days it names."""
        name, _, number = text.lower().partition(":")
        if name in DATE_LITERALS:
            first, days = DATE_LITERALS[name]
        elif name in ("last_n_days", "next_n_days") and number.isdigit():
            n = int(number)
            # LAST_N_DAYS:n is today and the n days before it; NEXT_N_DAYS:n today and after
            first, days = (-n, n + 1) if name == "last_n_days" else (0, n + 1)
        else:
            raise SoqlError("MALFORMED_QUERY", f"unknown date literal: {text}")
        today = self.org.clock().astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)  # fmt: skip
        start = today + timedelta(days=first)
        end = start + timedelta(days=days)
        if kind == "date":
            return DateRange(start.date(), end.date())
        return DateRange(start, end)

    def getter(self, column: Column) -> Callable[[Record], Any]:
        if column.relation is None:
            name = column.name
            return lambda r: r.get(name)
        ref, name, org = column.relation.name, column.name, self.org

        def related(record: Record) -> Any:
            found = org.find(record[ref]) if record.get(ref) else None
            if found is None:
                return None
            return found[0] if column.field is None else found[1].get(name)

        return related


@dataclass(frozen=True)
class DateRange:
    """A date literal's days: `start` included, `end` not."""

    start: Any
    end: Any


def _datetime(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _key(value: Any) -> Any:
    """What comparisons see: text without case, numbers as floats."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


def _compare(op: str, get: Callable[[Record], Any], value: Any) -> Callable[[Record], bool]:
    test = OPS[op]
    if isinstance(value, DateRange):
        return _in_range(op, get, value)
    if value is None:
        if op not in ("=", "!=", "<>"):
            raise SoqlError("MALFORMED_QUERY", f"null can only be compared with = or !=, not {op}")
        return lambda r: (get(r) is None) == (op == "=")

    def check(record: Record) -> bool:
        mine = get(record)
        if mine is None:
            return op in ("!=", "<>")
        return test(_key(mine), value)

    return check


def _in_range(op: str, get: Callable[[Record], Any], days: DateRange) -> Callable[[Record], bool]:
    """A comparison with a date literal: `=` inside its days, `>` after them, `<` before."""
    inside: dict[str, Callable[[Any], bool]] = {
        "=": lambda v: days.start <= v < days.end, "!=": lambda v: not days.start <= v < days.end,
        "<>": lambda v: not days.start <= v < days.end, "<": lambda v: v < days.start,
        "<=": lambda v: v < days.end, ">": lambda v: v >= days.end, ">=": lambda v: v >= days.start,
    }  # fmt: skip
    test = inside[op]

    def check(record: Record) -> bool:
        mine = get(record)
        return mine is not None and test(mine)

    return check


def parse(org: Org, soql: str) -> Query:
    if len(soql) > 100_000:
        raise SoqlError("MALFORMED_QUERY", "SOQL statements cannot exceed 100000 characters")
    return Parser(org, soql).parse()


def run(org: Org, query: Query, include_deleted: bool) -> list[Record]:
    """The records of `query`, filtered, sorted and sliced (before field selection)."""
    seen = (org.seen(query.obj, r) for r in org.records[query.obj].values())
    rows = [r for r in seen if r is not None
            and (include_deleted or not (r["IsDeleted"] or r.get("IsArchived")))]  # fmt: skip
    if query.where is not None:
        rows = [r for r in rows if query.where(r)]
    parser = Parser(org, "")
    parser.obj = query.obj
    for column, desc, nulls_first in reversed(query.order):
        get = parser.getter(column)
        present = [r for r in rows if get(r) is not None]
        missing = [r for r in rows if get(r) is None]
        present.sort(key=lambda r, g=get: _key(g(r)), reverse=desc)  # type: ignore[misc]
        rows = missing + present if nulls_first else present + missing
    end = None if query.limit is None else query.offset + query.limit
    return rows[query.offset : end]


def render(org: Org, query: Query, record: Record, version: str) -> Record:
    """`record` as a query returns it: `attributes`, the selected fields, relationships nested."""
    out: Record = {"attributes": _attributes(query.obj, record["Id"], version)}
    for column in query.columns:
        if column.relation is None:
            out[column.name] = stamp(record.get(column.name))
            continue
        rel = column.relation.relationship or column.relation.name
        target = (
            org.find(record[column.relation.name]) if record.get(column.relation.name) else None
        )
        if target is None:
            out[rel] = None
            continue
        nested = out.get(rel) or {"attributes": _attributes(target[0], target[1]["Id"], version)}
        nested[column.name] = (
            target[0] if column.field is None else stamp(target[1].get(column.name))
        )
        out[rel] = nested
    return out


def _attributes(obj: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": obj, "url": f"/services/data/{version}/sobjects/{obj}/{record_id}"}

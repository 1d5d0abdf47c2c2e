"""Prepared statements: SQLite's hot statements run straight on the driver, compiled once.

Why: on SQLite the all-in-one runs every statement inline on its one event loop, and SQLAlchemy's Core spends two
to four times the driver's own time on each one (the compiled cache's key and lookup, building the parameters, an
execution context, events, the result's metadata): an ``UPDATE ... RETURNING`` of an instance by uuid took 49 us
through ``Connection.execute`` and 21 us on the sqlite3 cursor. A boot runs some 27 statements, a delete 15.

``prepared(statement)`` marks a statement built once (a module constant, its values ``bindparam()``s) and
returns it unchanged: every engine can still run it as it is (PostgreSQL's async engine ignores the mark). On
SQLite, ``InlineConnection.execute`` looks it up and runs its ``Plan``: compiled once per dialect into the SQL
string, the bind names in their positional order, the bind processors (DateTime, JSON through the engine's
serializer, Boolean, any TypeDecorator), the values the statement carries itself (``deleted == 0``) and the scalar
Python-side defaults of INSERT/UPDATE, and for rows (SELECT, RETURNING) their keys and result processors. It runs
on the DBAPI connection of the same SQLAlchemy connection, in its transaction (begun as SQLAlchemy's autobegin
would, through the engine's ``begin`` event), so group commit's savepoints hold what it writes as they hold the
rest. The result (``PreparedResult``) has the surface the query modules use, with SQLAlchemy's own ``Row``s.

What falls back to SQLAlchemy's path (decided when the plan is compiled, once, unless said otherwise):
- statements with expanding IN, ``literal_execute`` or other post-compile parameters, escaped bind names,
  callable bind values, execution options, Python-side defaults that are not plain scalars (a function, a SQL
  expression), rows whose keys repeat or are anonymous labels (``count_1``: label them), or an INSERT into a
  table without a one-column primary key;
- at execution: a connection with execution options, a required bind left out (SQLAlchemy raises), a DML
  statement's seventeenth set of parameter keys (see ``Plan``), an executemany (a list of dicts) whose rows differ
  in their keys, or of a SELECT or a statement with RETURNING (the fast path runs the others with the driver's
  ``executemany``, as SQLAlchemy does for SQLite);
- while an engine or connection listener for ``before_execute``, ``after_execute``, ``before_cursor_execute``,
  ``after_cursor_execute`` or ``handle_error`` is registered: such listeners (the tests that count statements)
  get SQLAlchemy's own execution context and cursor, which the fast path has none of, so falling back while they
  listen gives them exactly what they expect, at the price of the fast path only while someone listens.

A driver error is raised as SQLAlchemy raises it (``DBAPIError.instance``: the same ``IntegrityError`` and so on,
with ``orig``), so callers catch what they caught before.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import JSON, bindparam, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql.dml import Insert, UpdateBase

S = TypeVar("S")
LOG = logging.getLogger(__name__)

#: the plans of the prepared statements by the statement's id (each plan holds its statement, so no id is reused)
PLANS: dict[int, Plan] = {}

_MISSING = object()


def in_json_array(column: Any, name: str = "b_uuids") -> Any:
    """SQLite's ``column IN`` a list bound as one JSON array (``json_each``): one bind parameter for a list of any
    length, so the statement can be prepared, where an expanding IN is rendered again for each execution with a
    parameter per value (a quarter of a 200-server detail page went on four of them)."""
    each = func.json_each(bindparam(name, type_=JSON)).table_valued("value")
    return column.in_(select(each.c.value).scalar_subquery())


def prepared(statement: S) -> S:
    """Mark ``statement`` (built once: a module constant) for the SQLite fast path; returns it unchanged."""
    if ROWS_WORK and id(statement) not in PLANS:
        PLANS[id(statement)] = Plan(statement)
    return statement


def unprepare(statement: Any) -> None:
    """Forget ``statement``'s plan (a cache of built statements dropping it)."""
    plan = PLANS.get(id(statement))
    if plan is not None and plan.statement is statement:
        del PLANS[id(statement)]


def plan_of(statement: Any) -> Plan | None:
    """The plan of a prepared statement, None for any other."""
    plan = PLANS.get(id(statement))
    return plan if plan is not None and plan.statement is statement else None


class _Compiled:
    """What one dialect makes of a prepared statement."""

    __slots__ = ("_carried", "_get", "_processed", "is_insert", "keys", "meta", "names", "pk_keys", "pk_map", "pk_meta",
                 "processors", "result_processors", "returns_rows", "sql")

    def __init__(self, statement: Any, dialect: Any, column_keys: list[str] | None) -> None:
        if statement._execution_options:  # yield_per, stream_results, schema_translate_map...: SQLAlchemy's to apply
            raise _Unsupported
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if (compiled.post_compile_params or compiled.literal_execute_params or compiled.escaped_bind_names
                or compiled.positiontup is None or dialect.paramstyle != "qmark"
                or (dialect.name, dialect.driver) != ("sqlite", "pysqlite")):
            raise _Unsupported
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        processors = compiled._bind_processors
        self.processors = tuple(processors.get(name) for name in self.names)
        # the values the statement carries (``deleted == 0``), or _MISSING for a bind the caller must give
        by_name = {compiled.bind_names[bind]: bind for bind in compiled.bind_names}
        carried: list[Any] = []
        for name in self.names:
            bind = by_name[name]
            if bind.callable is not None:
                raise _Unsupported
            carried.append(_MISSING if bind.required else bind.value)
        # Python-side defaults (INSERT's default=, UPDATE's onupdate=) of columns the statement does not set
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise _Unsupported
            carried[self.names.index(column.key)] = default.arg
        self._carried = {name: value for name, value in zip(self.names, carried, strict=True)
                         if value is not _MISSING}
        self._get: Callable[[Mapping[str, Any]], Any] = itemgetter(*self.names) if self.names else _no_values
        self._processed = tuple((index, process) for index, process in enumerate(self.processors)
                                if process is not None)
        self.is_insert = isinstance(statement, Insert)
        self.pk_keys: tuple[str, ...] = ()
        self.pk_meta: Any = None
        self.pk_map: dict[Any, int] = {}
        if self.is_insert:
            pk = list(statement.table.primary_key)
            if len(pk) != 1:
                raise _Unsupported
            self.pk_keys = (pk[0].key,)
            self.pk_meta = SimpleResultMetaData([pk[0].key])
            self.pk_map = {pk[0].key: 0, pk[0]: 0}
        columns = compiled._result_columns or []
        self.returns_rows = bool(columns)
        self.keys = tuple(entry[0] for entry in columns)
        # keys that repeat, or differ from the name the SQL gives the column (anonymous labels: ``count_1``),
        # which SQLAlchemy matches against the cursor's description by rules of its own
        if len(set(self.keys)) != len(self.keys) or any(entry[0] != entry[1] for entry in columns):
            raise _Unsupported
        self.meta = SimpleResultMetaData(list(self.keys))
        key_to_index: dict[Any, int] = {}
        for index, entry in enumerate(columns):
            key_to_index[entry[0]] = index
            for obj in entry[2]:
                if not isinstance(obj, str):
                    key_to_index.setdefault(obj, index)
        self.meta._key_to_index = key_to_index  # type: ignore[attr-defined]
        result_processors = [entry[3]._cached_result_processor(dialect, None) for entry in columns]
        self.result_processors = result_processors if any(result_processors) else None

    def values(self, parameters: Mapping[str, Any]) -> list[Any] | None:
        """The positional values of one execution, processed (the caller's value of a bind over the one the
        statement carries, as SQLAlchemy takes them); None if a required one is missing."""
        try:
            got = self._get({**self._carried, **parameters} if self._carried else parameters)
        except KeyError:
            return None
        values = list(got) if len(self.names) != 1 else [got]
        for index, process in self._processed:
            values[index] = process(values[index])
        return values


def _no_values(_parameters: Mapping[str, Any]) -> tuple[()]:
    return ()


class _Unsupported(Exception):
    """The statement has something the fast path does not do exactly: SQLAlchemy runs it."""


class Plan:
    """A prepared statement and what the last dialect it ran on compiled it into (None: SQLAlchemy runs it).

    A SELECT compiles once. An INSERT, UPDATE or DELETE compiles once per set of parameter keys, as SQLAlchemy
    compiles them (a key that names a column the statement does not set adds it to the statement): one set for
    the call sites of a constant, a few at most (beyond ``_SHAPES_MAX``, SQLAlchemy's path runs the others)."""

    __slots__ = ("_compiled", "_dialect", "_dml", "_shapes", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._dml = isinstance(statement, UpdateBase)
        self._dialect: Any = None
        self._compiled: _Compiled | None = None
        self._shapes: dict[tuple[str, ...], _Compiled | None] = {}

    def compiled_for(self, dialect: Any, keys: tuple[str, ...]) -> _Compiled | None:
        if dialect is self._dialect and not self._dml:
            return self._compiled
        if dialect is not self._dialect:
            self._dialect, self._compiled, self._shapes = dialect, None, {}
            if not self._dml:
                self._compiled = _compile(self.statement, dialect, None)
        if not self._dml:
            return self._compiled
        try:
            return self._shapes[keys]
        except KeyError:
            if len(self._shapes) >= _SHAPES_MAX:
                return None
            compiled = self._shapes[keys] = _compile(self.statement, dialect, list(keys))
            return compiled

    def run(self, conn: Any, parameters: Any) -> PreparedResult | None:
        """Execute on ``conn`` (a sync SQLAlchemy connection on SQLite); None: SQLAlchemy's path must run it."""
        many: list[Any] | None = None
        if parameters is None:
            parameters = {}
        elif type(parameters) is not dict and not isinstance(parameters, Mapping):
            if type(parameters) is not list or not parameters or not isinstance(parameters[0], Mapping):
                return None
            if len(parameters) > 1:  # executemany: rows with the same keys, of an INSERT/UPDATE/DELETE
                many = parameters
            parameters = parameters[0]
        keys = tuple(parameters) if self._dml else ()
        compiled = self.compiled_for(conn.dialect, keys)
        if compiled is None:
            return None
        # listeners on the engine (or, when the connection has its own, on both: its dispatch joins them); the
        # connection's execution options (a schema_translate_map, ...) are SQLAlchemy's to apply
        dispatch = conn.dispatch if conn._has_events else conn.engine.dispatch
        if (conn._execution_options or dispatch.before_cursor_execute or dispatch.after_cursor_execute
                or dispatch.before_execute or dispatch.after_execute or conn.dialect.dispatch.handle_error):
            return None
        if many is None:
            values: Any = compiled.values(parameters)
            if values is None:
                return None
        else:
            if compiled.returns_rows or not self._dml:
                return None
            values = []
            for each in many:
                row = compiled.values(each) if tuple(each) == keys else None
                if row is None:
                    return None
                values.append(row)
        if not conn.in_transaction():
            conn.begin()  # what SQLAlchemy's autobegin does: the engine's begin event emits BEGIN
        raw = conn.connection.dbapi_connection
        try:
            if many is None:
                cursor = raw.execute(compiled.sql, values)
                rows = cursor.fetchall() if compiled.returns_rows else None
            else:
                cursor = raw.executemany(compiled.sql, values)
                rows = None
        except sqlite3.Error as error:
            wrapped = sa_exc.DBAPIError.instance(compiled.sql, values, error, sqlite3.Error,
                                                 dialect=conn.dialect, ismulti=many is not None)
            raise wrapped from error
        return PreparedResult(compiled, rows, cursor, parameters, many is not None)


#: the most parameter key sets one DML statement compiles for on the fast path
_SHAPES_MAX = 16


def _compile(statement: Any, dialect: Any, column_keys: list[str] | None) -> _Compiled | None:
    try:
        return _Compiled(statement, dialect, column_keys)
    except _Unsupported:
        return None
    except (AttributeError, KeyError, TypeError):  # a compiler whose internals moved: SQLAlchemy runs it
        LOG.warning("SQLite fast path: SQLAlchemy %s compiles %s unlike what prepared.py reads; it runs on "
                    "SQLAlchemy's path", sqlalchemy.__version__, type(statement).__name__, exc_info=True)
        return None


def _rows_work() -> bool:
    """Whether this SQLAlchemy builds ``Row``s from the parts the fast path hands it (its private constructor and
    ``SimpleResultMetaData._key_to_index``, stable through 2.0 and 2.1, which pyproject.toml allows): if not, no
    statement is prepared and everything runs on SQLAlchemy's path, slower but right."""
    try:
        meta = SimpleResultMetaData(["a", "b"])
        key_to_index = meta._key_to_index  # type: ignore[attr-defined]
        row = Row(meta, None, key_to_index, (1, "x"))
        return bool(row.a == 1 and row._mapping["b"] == "x" and tuple(row) == (1, "x"))
    except Exception:  # any failure means the same: do without
        LOG.warning("SQLite fast path off: SQLAlchemy %s builds rows unlike what prepared.py expects",
                    sqlalchemy.__version__, exc_info=True)
        return False


ROWS_WORK = _rows_work()


class _Rows:
    """What ``scalars()`` and ``mappings()`` give: each row's value at ``index``, or (``index`` None) its mapping,
    taken from the row when asked for (``mappings().first()`` makes one mapping, not one per row)."""

    __slots__ = ("_index", "_rows")

    def __init__(self, rows: list[Row[Any]], index: int | None) -> None:
        self._rows = rows
        self._index = index

    def _item(self, row: Row[Any]) -> Any:
        return row._mapping if self._index is None else row[self._index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.all())

    def all(self) -> list[Any]:
        if self._index is None:
            return [row._mapping for row in self._rows]
        index = self._index
        return [row[index] for row in self._rows]

    fetchall = all

    def first(self) -> Any:
        return self._item(self._rows[0]) if self._rows else None

    def one(self) -> Any:
        return self._item(_one(self._rows))

    def one_or_none(self) -> Any:
        return self._item(_one(self._rows)) if self._rows else None


def _one(items: list[Any]) -> Any:
    if not items:
        raise sa_exc.NoResultFound("No row was found when one was required")
    if len(items) > 1:
        raise sa_exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
    return items[0]


class PreparedResult:
    """The result of a prepared statement: its rows all fetched (the hot statements return a few), as ``Row``s.

    ``rowcount`` is the driver's once the rows are fetched: for an UPDATE or DELETE with RETURNING, the rows it
    changed, where SQLAlchemy's result, read before its rows are, may say 0 (sqlite3 counts as it steps)."""

    __slots__ = ("_compiled", "_many", "_parameters", "_rows", "lastrowid", "rowcount")

    def __init__(self, compiled: _Compiled, rows: list[tuple[Any, ...]] | None, cursor: Any,
                 parameters: Mapping[str, Any], many: bool = False) -> None:
        self._compiled = compiled
        self._parameters = parameters
        self._many = many
        if rows is None:
            self._rows: list[Row[Any]] = []
        else:
            meta, processors, key_to_index = compiled.meta, compiled.result_processors, compiled.meta._key_to_index  # type: ignore[attr-defined]
            self._rows = [Row(meta, processors, key_to_index, row) for row in rows]
        self.rowcount: int = cursor.rowcount
        self.lastrowid: int | None = cursor.lastrowid

    @property
    def returns_rows(self) -> bool:
        return self._compiled.returns_rows

    @property
    def inserted_primary_key(self) -> Row[Any]:
        compiled = self._compiled
        if not compiled.is_insert:
            raise sa_exc.InvalidRequestError("Statement is not an insert() expression construct.")
        if self._many:
            raise sa_exc.InvalidRequestError("This statement was an executemany call; primary key values are "
                                             "not available")
        value = self._parameters.get(compiled.pk_keys[0])
        return Row(compiled.pk_meta, None, compiled.pk_map, (self.lastrowid if value is None else value,))

    def keys(self) -> Any:
        return self._compiled.meta.keys

    def _take(self) -> list[Row[Any]]:
        if not self._compiled.returns_rows:
            raise sa_exc.ResourceClosedError("This result object does not return rows. It has been closed "
                                             "automatically.")
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Row[Any]]:
        return iter(self._take())

    def all(self) -> list[Row[Any]]:
        return self._take()

    fetchall = all

    def fetchone(self) -> Row[Any] | None:
        rows = self._take()
        if not rows:
            return None
        self._rows = rows[1:]
        return rows[0]

    def first(self) -> Row[Any] | None:
        rows = self._take()
        return rows[0] if rows else None

    def one(self) -> Row[Any]:
        return _one(self._take())  # type: ignore[no-any-return]

    def one_or_none(self) -> Row[Any] | None:
        rows = self._take()
        return _one(rows) if rows else None

    def scalar(self) -> Any:
        rows = self._take()
        return rows[0][0] if rows else None

    def scalar_one(self) -> Any:
        return _one(self._take())[0]

    def scalar_one_or_none(self) -> Any:
        rows = self._take()
        return _one(rows)[0] if rows else None

    def scalars(self, index: int = 0) -> _Rows:
        return _Rows(self._take(), index)

    def mappings(self) -> _Rows:
        return _Rows(self._take(), None)

    def close(self) -> None:
        self._rows = []

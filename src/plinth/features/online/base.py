"""The online store interface, and the encoding every backend shares.

An online store keeps, for each entity of a feature view, the newest row of feature values and
its event time. Writes keep the newest row per entity and never replace a stored row with an
older one, so materializing the same data twice, or two batches in any order, ends in the same
state. Reads enforce the view's TTL: a value older than ``ttl`` at ``now`` comes back as
``None`` with the status ``"expired"``.

Encoding (shared by the SQLite and Redis backends, produced column-wise, never row by row):

* **Entity key**: one text per entity, typed part by part, so ``1`` and ``"1"`` differ:
  ``i<int>``, ``f<IEEE-754 bits>``, ``b1``/``b0``, ``t<µs since epoch>``, ``d<days>``,
  ``s<length>:<text>`` (the last part drops the length: ``s:<text>``).
* **Values**: a JSON array in the order of a *value schema* (feature names and kinds), built by
  DuckDB in bulk. The schema is stored once under its digest; each row names its schema.
* **Event time**: integer microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import re
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from numbers import Integral, Real
from operator import itemgetter
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plinth._core.clock import utcnow
from plinth.errors import ConfigError, SchemaMismatchError

__all__ = [
    "EXPIRED",
    "MISSING",
    "PRESENT",
    "Batch",
    "OnlineRow",
    "OnlineStore",
    "PreparedWrite",
    "ReadPlan",
    "ValueSchema",
    "assemble",
    "check_view_name",
    "encode_entity",
    "prepare_write",
]

PRESENT = "present"
MISSING = "missing"
EXPIRED = "expired"

_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICROSECOND = timedelta(microseconds=1)
_DOUBLE = struct.Struct("<d")
_INT64 = struct.Struct("<q")
_scan = json.JSONDecoder().scan_once  # the C scanner, without json.loads' wrappers


def _loads(payload: str | bytes) -> Any:
    return _scan(payload if type(payload) is str else payload.decode(), 0)[0]


@dataclass(frozen=True)
class OnlineRow:
    """The online values of one entity: a value and a status per requested feature.

    ``statuses`` maps each feature to ``"present"``, ``"missing"`` (entity or feature not
    stored; the value is ``None``) or ``"expired"`` (stored, but older than the TTL; the value
    is ``None``). ``event_timestamp`` is the stored row's event time (UTC), ``None`` when the
    entity is not stored.

    Example:
        >>> row = OnlineRow({"temp": 12.5}, {"temp": "present"}, None)
        >>> row.values["temp"], row.statuses["temp"]
        (12.5, 'present')
    """

    values: dict[str, Any]
    statuses: dict[str, str]
    event_timestamp: datetime | None


class OnlineStore(ABC):
    """The newest feature values per entity of each feature view, read with the TTL enforced.

    Backends are chosen by URL with :func:`plinth.features.online.open_online_store`.

    Example:
        >>> import datetime, tempfile, pyarrow as pa
        >>> from plinth.features.online import open_online_store
        >>> store = open_online_store(tempfile.mkdtemp() + "/online.db")
        >>> ts = pa.array([datetime.datetime(2024, 1, 1)], pa.timestamp("us", "UTC"))
        >>> store.write("w", ["origin"], pa.table({"origin": ["JFK"], "ts": ts, "temp": [3.5]}),
        ...             timestamp="ts")
        1
        >>> store.read("w", [("JFK",)], ["temp"], ttl=None)[0].values
        {'temp': 3.5}
        >>> store.close()
    """

    #: Where the store lives, with any password redacted.
    url: str

    @abstractmethod
    def write(self, view: str, keys: list[str], data: pa.Table, *, timestamp: str) -> int:
        """Store the newest row per entity of ``data``; return how many rows were stored.

        ``data`` holds the entity key columns ``keys``, the event-time column ``timestamp``
        (an Arrow timestamp; naive values are taken as UTC) and the feature columns (all other
        columns). Within ``data`` the newest row of each entity wins (the later row on a tie);
        a stored row is replaced only by a row at least as new, so rows that lose against the
        stored ones are not counted.

        Example:
            >>> # store.write("weather", ["origin"], table, timestamp="time_hour")
        """

    @abstractmethod
    def read(
        self,
        view: str,
        entities: Sequence[tuple[Any, ...]],
        features: Sequence[str],
        *,
        ttl: timedelta | None,
        now: datetime | None = None,
    ) -> list[OnlineRow]:
        """Return one :class:`OnlineRow` per entity, in the order of ``entities``.

        Each entity is a tuple of key values in the order of the view's keys; values compare
        with their Python types (``1`` and ``"1"`` are different entities). A row older than
        ``ttl`` at ``now`` (default: the current time) is ``"expired"``; ``ttl=None`` never
        expires.

        Example:
            >>> # store.read("weather", [("JFK",), ("LGA",)], ["temp"], ttl=timedelta(hours=3))
        """

    @abstractmethod
    def delete_view(self, view: str) -> None:
        """Remove every stored row of ``view``; a view that does not exist is ignored.

        Example:
            >>> # store.delete_view("weather")
        """

    @abstractmethod
    def views(self) -> list[str]:
        """Return the names of the views that have been written, sorted.

        Example:
            >>> # store.views() -> ['planes', 'weather']
        """

    @abstractmethod
    def count(self, view: str) -> int:
        """Return how many entities ``view`` holds (0 for a view never written).

        Example:
            >>> # store.count("weather") -> 3
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards. Closing twice is fine.

        Example:
            >>> # store.close()
        """

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- names -------------------------------------------------------------------------------------


def check_view_name(view: str) -> str:
    """Return ``view`` if it is a valid view name (letters, digits, ``_``), else raise.

    Example:
        >>> check_view_name("weather_hourly")
        'weather_hourly'
    """
    if not isinstance(view, str) or not _VIEW_NAME.match(view):
        raise ConfigError(
            f"Feature view name {view!r} is not valid for the online store.",
            hint="Use letters, digits and underscores, starting with a letter or underscore "
            "(at most 128 characters).",
        )
    return view


# -- entity keys -------------------------------------------------------------------------------


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // _MICROSECOND
    return (value - _EPOCH) // _MICROSECOND


def _encode_part(value: Any, last: bool) -> str:
    if isinstance(value, str):
        return f"s:{value}" if last else f"s{len(value)}:{value}"
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, Integral):
        return f"i{int(value)}"
    if isinstance(value, Real):
        bits = _INT64.unpack(_DOUBLE.pack(float(value) + 0.0))[0]
        return f"f{bits}"
    if isinstance(value, datetime):
        return f"t{_micros(value)}"
    if isinstance(value, date):
        return f"d{value.toordinal() - _EPOCH_ORDINAL}"
    if value is None:
        return "n"  # never written (writes refuse null keys), so always missing
    raise SchemaMismatchError(
        f"An entity key value of type {type(value).__name__} ({value!r}) is not supported.",
        hint="Use str, int, float, bool, date or datetime key values.",
    )


def encode_entity(entity: Any) -> str:
    """Return the stored text of an entity key; a bare value counts as a 1-tuple.

    Example:
        >>> encode_entity(("JFK", 1)), encode_entity(("1",))
        ('s3:JFKi1', 's:1')
    """
    if type(entity) is tuple and len(entity) == 1:  # the common case, kept fast
        value = entity[0]
        if type(value) is str:
            return "s:" + value
        if type(value) is int:
            return f"i{value}"
    parts = entity if isinstance(entity, tuple | list) else (entity,)
    last = len(parts) - 1
    return "".join(_encode_part(value, i == last) for i, value in enumerate(parts))


def _key_part(column: pa.ChunkedArray, name: str, last: bool) -> list[Any]:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        text = column.cast(pa.string())
        if last:
            return ["s:", text]
        return ["s", pc.utf8_length(text).cast(pa.string()), ":", text]
    if pa.types.is_boolean(kind):
        return [pc.if_else(column, "b1", "b0")]
    if pa.types.is_integer(kind):
        return ["i", column.cast(pa.string())]
    if pa.types.is_floating(kind):
        doubles = pc.add(column.cast(pa.float64()), 0.0)  # -0.0 + 0.0 == +0.0, as in Python
        bits = pa.chunked_array([c.view(pa.int64()) for c in doubles.chunks], pa.int64())
        return ["f", bits.cast(pa.string())]
    if pa.types.is_timestamp(kind):
        micros = column.cast(pa.timestamp("us", kind.tz), safe=False).cast(pa.int64())
        return ["t", micros.cast(pa.string())]
    if pa.types.is_date(kind):
        return ["d", column.cast(pa.date32()).cast(pa.int32()).cast(pa.string())]
    raise SchemaMismatchError(
        f"Key column '{name}' has type {kind}, which the online store cannot use as a key.",
        hint="Use string, integer, float, boolean, date or timestamp key columns.",
    )


def _encode_keys(data: pa.Table, keys: Sequence[str]) -> pa.ChunkedArray:
    pieces: list[Any] = []
    for i, name in enumerate(keys):
        column = data.column(name)
        if column.null_count:
            raise SchemaMismatchError(
                f"Key column '{name}' has {column.null_count} null value(s); an entity needs "
                "every key.",
                hint=f"Filter out the rows where '{name}' is null before writing.",
            )
        pieces.extend(_key_part(column, name, i == len(keys) - 1))
    if len(pieces) == 1:
        return pieces[0]
    return pc.binary_join_element_wise(*pieces, "")


# -- value schemas -----------------------------------------------------------------------------


def _to_datetime_tz(value: Any) -> Any:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _to_datetime(value: Any) -> Any:
    return None if value is None else _EPOCH_NAIVE + timedelta(microseconds=value)


def _to_date(value: Any) -> Any:
    return None if value is None else date.fromordinal(_EPOCH_ORDINAL + value)


def _to_time(value: Any) -> Any:
    if value is None:
        return None
    seconds, micros = divmod(value, 1_000_000)
    minutes, second = divmod(seconds, 60)
    return time(minutes // 60, minutes % 60, second, micros)


def _to_decimal(value: Any) -> Any:
    return None if value is None else Decimal(value)


def _to_bytes(value: Any) -> Any:
    return None if value is None else base64.b64decode(value)


_DECODERS: dict[str, Callable[[Any], Any] | None] = {
    "null": None,
    "bool": None,
    "int": None,
    "str": None,
    "json": None,
    "float": None,  # DuckDB writes doubles as JSON reals (1.0, 1e-07, NaN): already floats
    "timestamp": _to_datetime,
    "timestamp_tz": _to_datetime_tz,
    "date": _to_date,
    "time": _to_time,
    "decimal": _to_decimal,
    "bytes": _to_bytes,
}


class ValueSchema:
    """The feature names and kinds of stored value arrays; identified by a content digest.

    Example:
        >>> schema = ValueSchema([("temp", "float"), ("origin", "str")])
        >>> schema.decode('[12.5,"JFK"]', ["origin", "wind"])
        {'origin': 'JFK', 'wind': None}
    """

    __slots__ = ("_decoders", "_plans", "digest", "fields", "index", "text")

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self.fields = tuple((str(name), str(kind)) for name, kind in fields)
        unknown = [kind for _, kind in self.fields if kind not in _DECODERS]
        if unknown:
            raise ConfigError(f"Unknown value kind(s) {unknown} in an online value schema.")
        self.text = json.dumps([list(field) for field in self.fields], separators=(",", ":"))
        self.digest = hashlib.sha256(self.text.encode()).hexdigest()[:16]
        self.index = {name: i for i, (name, _) in enumerate(self.fields)}
        self._decoders = tuple(_DECODERS[kind] for _, kind in self.fields)
        self._plans: dict[tuple[str, ...], ReadPlan] = {}

    @classmethod
    def from_text(cls, text: str | bytes) -> ValueSchema:
        """Rebuild a schema from its stored JSON text.

        Example:
            >>> ValueSchema.from_text('[["a","int"]]').fields
            (('a', 'int'),)
        """
        return cls([(name, kind) for name, kind in json.loads(text)])

    def plan(self, features: tuple[str, ...]) -> ReadPlan:
        """Return the (cached) plan that decodes ``features`` from this schema's payloads.

        Example:
            >>> ValueSchema([("n", "int")]).plan(("n", "m")).present
            {'n': 'present', 'm': 'missing'}
        """
        plan = self._plans.get(features)
        if plan is None:
            if len(self._plans) >= 256:
                self._plans.clear()
            plan = self._plans[features] = ReadPlan(self, features)
        return plan

    def decode(self, payload: str | bytes, features: Sequence[str]) -> dict[str, Any]:
        """Return the value of each of ``features`` in a payload (``None`` if not stored).

        Example:
            >>> ValueSchema([("n", "int")]).decode("[3]", ["n"])
            {'n': 3}
        """
        return self.plan(tuple(dict.fromkeys(features))).values(payload)


class ReadPlan:
    """How to pull a list of requested features out of one schema's payloads, fast.

    Example:
        >>> plan = ValueSchema([("a", "int"), ("b", "str")]).plan(("b", "a"))
        >>> plan.values('[1,"x"]')
        {'b': 'x', 'a': 1}
    """

    __slots__ = ("_decoders", "_getter", "_stored", "complete", "expired", "features", "present")

    def __init__(self, schema: ValueSchema, features: tuple[str, ...]) -> None:
        self.features = features
        self._stored = tuple(f for f in features if f in schema.index)
        self.complete = len(self._stored) == len(features)
        indices = [schema.index[f] for f in self._stored]
        self._getter: Callable[[list[Any]], tuple[Any, ...]]
        if len(indices) == 1:
            only = indices[0]
            self._getter = lambda items: (items[only],)
        elif indices:
            self._getter = itemgetter(*indices)
        else:
            self._getter = lambda items: ()
        self._decoders = tuple(
            (f, schema._decoders[schema.index[f]])
            for f in self._stored
            if schema._decoders[schema.index[f]] is not None
        )
        self.present = {f: PRESENT if f in schema.index else MISSING for f in features}
        self.expired = {f: EXPIRED if f in schema.index else MISSING for f in features}

    def values(self, payload: str | bytes) -> dict[str, Any]:
        """Decode one payload into ``{feature: value}`` in request order.

        Example:
            >>> ValueSchema([("a", "int")]).plan(("a",)).values("[5]")
            {'a': 5}
        """
        values = dict(zip(self._stored, self._getter(_loads(payload)), strict=True))
        for feature, decoder in self._decoders:
            values[feature] = decoder(values[feature])
        if self.complete:
            return values
        return {f: values.get(f) for f in self.features}


def _value_column(column: pa.ChunkedArray, name: str) -> tuple[str, pa.ChunkedArray, str]:
    """Return (kind, column DuckDB will read, SQL expression template) for one feature."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_null(kind):
        return "null", column, "NULL"
    if pa.types.is_boolean(kind):
        return "bool", column, "{}"
    if pa.types.is_integer(kind):
        return "int", column, "{}"
    if pa.types.is_floating(kind):
        return "float", column.cast(pa.float64()), "{}"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "str", column, "{}"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "bytes", column.cast(pa.large_binary()), "to_base64({})"
    if pa.types.is_fixed_size_binary(kind) or pa.types.is_binary_view(kind):
        return "bytes", column.cast(pa.large_binary()), "to_base64({})"
    if pa.types.is_timestamp(kind):
        micros = column.cast(pa.timestamp("us", kind.tz), safe=False).cast(pa.int64())
        return ("timestamp_tz" if kind.tz else "timestamp"), micros, "{}"
    if pa.types.is_date(kind):
        return "date", column.cast(pa.date32()).cast(pa.int32()), "{}"
    if pa.types.is_time(kind):
        return "time", column.cast(pa.time64("us"), safe=False).cast(pa.int64()), "{}"
    if pa.types.is_decimal(kind):
        return "decimal", column.cast(pa.string()), "{}"
    if pa.types.is_nested(kind) and not pa.types.is_union(kind):
        return "json", column, "{}"
    raise SchemaMismatchError(
        f"Feature column '{name}' has type {kind}, which the online store cannot hold.",
        hint="Cast it to a number, string, boolean, date, timestamp, decimal, binary, list or "
        "struct column before writing.",
    )


# -- writes ------------------------------------------------------------------------------------


#: One batch of rows for a backend: encoded keys, event times (µs) and JSON value arrays.
Batch = tuple[list[str], list[int], list[str]]

BATCH_ROWS = 65_536
_DONE = object()


class PreparedWrite:
    """Rows ready for a backend, newest row per entity only, in key order, in batches.

    Iterating runs the encoding: DuckDB builds the JSON value arrays and sorts the rows by
    (key, event time, input order); the batches are turned into Python lists while the caller
    stores the previous batch (in a producer thread when there is more than one batch).
    Duplicates of an entity are adjacent in that order, so only the last of each run, the
    newest, is kept.

    Example:
        >>> import pyarrow as pa
        >>> t = pa.table({"k": [1, 1], "ts": pa.array([2, 1], pa.timestamp("us")), "v": [9, 8]})
        >>> prepared = prepare_write(["k"], t, "ts")
        >>> list(prepared)
        [(['i1'], [2], ['[9]'])]
    """

    def __init__(self, schema: ValueSchema, source: pa.Table, sql: str, batch_rows: int) -> None:
        self.schema = schema
        self.rows = source.num_rows
        self._source = source
        self._sql = sql
        self._batch_rows = batch_rows

    def _batches(self, stop: threading.Event | None = None) -> Iterator[Batch]:
        """Yield the deduplicated batches (runs in the producer thread when threaded)."""
        import duckdb

        connection = duckdb.connect()
        try:
            connection.register("source", self._source)
            relation = connection.sql(self._sql)
            to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            carry: tuple[str, int, str] | None = None
            for batch in to_reader(self._batch_rows):
                if stop is not None and stop.is_set():
                    return
                if batch.num_rows == 0:
                    continue
                keys_column = batch.column(0)
                if batch.num_rows > 1:
                    last = pc.not_equal(
                        keys_column.slice(0, batch.num_rows - 1), keys_column.slice(1)
                    )
                    if not pc.all(last).as_py():
                        batch = batch.filter(pa.concat_arrays([last, pa.array([True])]))
                keys = batch.column(0).to_pylist()
                times = batch.column(1).to_pylist()
                payloads = batch.column(2).to_pylist()
                if carry is not None and carry[0] != keys[0]:
                    keys.insert(0, carry[0])
                    times.insert(0, carry[1])
                    payloads.insert(0, carry[2])
                carry = (keys.pop(), times.pop(), payloads.pop())
                if keys:
                    yield keys, times, payloads
            if carry is not None:
                yield [carry[0]], [carry[1]], [carry[2]]
        finally:
            connection.close()

    def __iter__(self) -> Generator[Batch, None, None]:
        if self.rows <= self._batch_rows:
            yield from self._batches()
            return
        yield from _threaded(self._batches)


def _threaded(produce: Callable[[threading.Event], Iterator[Batch]]) -> Iterator[Batch]:
    """Run ``produce`` in a thread, a couple of batches ahead of the consumer."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def offer(item: Any) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            for batch in produce(stop):
                offer(batch)
            offer(_DONE)
        except BaseException as exc:
            offer(exc)

    worker = threading.Thread(target=run, name="plinth-online-encode", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=60)


def _check_columns(data: pa.Table, keys: Sequence[str], timestamp: str) -> list[str]:
    if not isinstance(data, pa.Table):
        raise SchemaMismatchError(
            f"Online writes take a pyarrow.Table, not {type(data).__name__}.",
            hint="Convert the data with pyarrow.table(...) or pyarrow.Table.from_pandas(...).",
        )
    names = data.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SchemaMismatchError(
            f"The data repeats column name(s) {duplicated}.", hint="Rename the duplicates."
        )
    if not keys or isinstance(keys, str):
        raise ConfigError(
            "An online write needs a list of entity key columns.",
            hint="Pass keys=['origin'] or keys=['origin', 'tailnum'].",
        )
    if len(set(keys)) != len(keys):
        raise ConfigError(f"The key columns {list(keys)} repeat a name.")
    absent = [k for k in [*keys, timestamp] if k not in names]
    if absent:
        raise SchemaMismatchError(
            f"The data lacks column(s) {absent}; it has {names}.",
            hint="Pass the names of the entity key columns and of the event-time column.",
        )
    if timestamp in keys:
        raise ConfigError(f"The event-time column '{timestamp}' is also a key column.")
    kind = data.schema.field(timestamp).type
    if not pa.types.is_timestamp(kind):
        raise SchemaMismatchError(
            f"The event-time column '{timestamp}' has type {kind}, not a timestamp.",
            hint="Cast it with pyarrow (e.g. pc.cast(col, pa.timestamp('us', 'UTC'))).",
        )
    nulls = data.column(timestamp).null_count
    if nulls:
        raise SchemaMismatchError(
            f"The event-time column '{timestamp}' has {nulls} null value(s).",
            hint="Every row needs an event time; filter out or fill the null ones.",
        )
    return [n for n in names if n not in keys and n != timestamp]


def prepare_write(
    keys: Sequence[str], data: pa.Table, timestamp: str, *, batch_rows: int | None = None
) -> PreparedWrite:
    """Check ``data`` and encode its keys and event times; iterate the result for the rows.

    Raises :class:`SchemaMismatchError` or :class:`ConfigError` up front for bad input, so a
    backend can check everything before it opens a transaction.

    Example:
        >>> import pyarrow as pa
        >>> t = pa.table({"k": ["a"], "ts": pa.array([5], pa.timestamp("us")), "v": [1.5]})
        >>> prepare_write(["k"], t, "ts").schema.fields
        (('v', 'float'),)
    """
    features = _check_columns(data, keys, timestamp)
    encoded_keys = _encode_keys(data, keys)
    ts_type = data.schema.field(timestamp).type
    micros = data.column(timestamp).cast(pa.timestamp("us", ts_type.tz), safe=False)
    columns: dict[str, Any] = {
        "k": encoded_keys,
        "ts": micros.cast(pa.int64()),
        "rn": pa.array(np.arange(data.num_rows, dtype=np.int64)),
    }
    fields: list[tuple[str, str]] = []
    expressions: list[str] = []
    for i, name in enumerate(features):
        kind, column, template = _value_column(data.column(name), name)
        fields.append((name, kind))
        if template != "NULL":
            columns[f"c{i}"] = column
        expressions.append(template.format(f"c{i}"))
    # Encoding before sorting keeps the sorted rows narrow (measured: less CPU than sorting
    # every feature column and encoding afterwards).
    sql = (
        f"SELECT k, ts, json_array({', '.join(expressions)})::VARCHAR AS v "
        "FROM source ORDER BY k, ts, rn"
    )
    return PreparedWrite(ValueSchema(fields), pa.table(columns), sql, batch_rows or BATCH_ROWS)


# -- reads -------------------------------------------------------------------------------------

#: What a backend found for one encoded key: (event time µs, value schema, payload).
Found = tuple[int, ValueSchema, "str | bytes"]


def _as_micros(now: datetime | None) -> int:
    return _micros(now if now is not None else utcnow())


def assemble(
    keys: Sequence[str],
    found: Mapping[str, Found],
    features: Sequence[str],
    *,
    ttl: timedelta | None,
    now: datetime | None,
) -> list[OnlineRow]:
    """Build the rows of a read, in request order, from what a backend found per key.

    Example:
        >>> schema = ValueSchema([("n", "int")])
        >>> rows = assemble(["a", "b"], {"a": (0, schema, "[1]")}, ["n"], ttl=None, now=None)
        >>> [r.statuses["n"] for r in rows]
        ['present', 'missing']
    """
    wanted = tuple(dict.fromkeys(features))
    limit = None if ttl is None else _as_micros(now) - ttl // _MICROSECOND
    absent_values = dict.fromkeys(wanted)
    absent_statuses = dict.fromkeys(wanted, MISSING)
    done: dict[str, OnlineRow] = {}
    out: list[OnlineRow] = []
    for key in keys:
        row = done.get(key)
        if row is not None:
            out.append(OnlineRow(dict(row.values), dict(row.statuses), row.event_timestamp))
            continue
        hit = found.get(key)
        if hit is None:
            row = OnlineRow(dict(absent_values), dict(absent_statuses), None)
        else:
            micros, schema, payload = hit
            plan = schema.plan(wanted)
            stamp = _EPOCH + timedelta(microseconds=micros)
            if limit is not None and micros < limit:
                row = OnlineRow(dict(absent_values), dict(plan.expired), stamp)
            else:
                row = OnlineRow(plan.values(payload), dict(plan.present), stamp)
        done[key] = row
        out.append(row)
    return out

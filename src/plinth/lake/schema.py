"""Arrow schemas in the lake: normalization to Delta-compatible types, and schema enforcement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from plinth.errors import ConfigError, SchemaMismatchError

_TYPE_NAMES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "int": pa.int64(),
    "float32": pa.float32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "str": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}


def parse_type(name: str) -> pa.DataType:
    """Return the Arrow type for a user-facing type name such as ``int64`` or ``timestamptz``.

    Example:
        >>> parse_type("float64")
        DataType(double)
    """
    key = name.strip().lower()
    if key not in _TYPE_NAMES:
        raise ConfigError(
            f"Unknown column type '{name}'.",
            hint=f"Use one of: {', '.join(sorted(_TYPE_NAMES))}.",
        )
    return _TYPE_NAMES[key]


def delta_type(dtype: pa.DataType) -> pa.DataType:
    """Return the Delta-compatible Arrow type used to store values of ``dtype``.

    Delta has no unsigned, half-float, time-of-day or null types, and stores timestamps in
    microseconds.

    Example:
        >>> delta_type(pa.timestamp("s", tz="UTC"))
        TimestampType(timestamp[us, tz=UTC])
        >>> delta_type(pa.uint32())
        DataType(int64)
    """
    if pa.types.is_dictionary(dtype):
        return delta_type(dtype.value_type)
    if pa.types.is_null(dtype):
        return pa.string()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", tz=dtype.tz)
    if pa.types.is_unsigned_integer(dtype):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(dtype.bit_width, pa.int64())
    if pa.types.is_float16(dtype):
        return pa.float32()
    if pa.types.is_time(dtype) or pa.types.is_duration(dtype) or pa.types.is_interval(dtype):
        return pa.string()
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_date64(dtype):
        return pa.date32()
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return pa.list_(delta_type(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, delta_type(f.type)) for f in dtype])
    return dtype


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """Return ``schema`` with every column converted by :func:`delta_type` (all nullable)."""
    return pa.schema([pa.field(f.name, delta_type(f.type), nullable=True) for f in schema])


def _family(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype):
        return "float"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    return str(dtype)


def can_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Return whether values of ``source`` fit ``target`` without changing meaning.

    Example:
        >>> can_cast(pa.int32(), pa.float64()), can_cast(pa.string(), pa.int64())
        (True, False)
    """
    if source == target or pa.types.is_null(source):
        return True
    src, dst = _family(source), _family(target)
    if src == dst:
        if src == "timestamp":
            return (source.tz is None) == (target.tz is None)
        return True
    return (src, dst) in {("int", "float"), ("date32[day]", "timestamp")}


def conform_batch(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """Return ``batch`` with ``target``'s columns, order and types; absent columns become null.

    Integer narrowing that would overflow raises :class:`SchemaMismatchError` naming the column.
    """
    arrays = []
    for field in target:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(index)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.type != field.type:
            # Delta stores microseconds: finer timestamps are truncated, as other engines do.
            truncate = pa.types.is_timestamp(column.type) and pa.types.is_timestamp(field.type)
            try:
                column = pc.cast(column, field.type, safe=not truncate)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(
                    f"Column '{field.name}' holds values that do not fit its type {field.type}: "
                    f"{exc}.",
                    hint="Fix the values in the source, or ingest them into a new table.",
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def plan_schema(
    table: pa.Schema | None, incoming: pa.Schema, *, evolve: bool, table_name: str
) -> pa.Schema:
    """Return the schema to write, enforcing ``table``'s schema unless ``evolve`` allows adds.

    Raises :class:`SchemaMismatchError` naming every column that is missing, extra or of an
    incompatible type.

    Example:
        >>> t = pa.schema([("a", pa.int64())])
        >>> plan_schema(t, pa.schema([("a", pa.int32())]), evolve=False, table_name="x")
        a: int64
    """
    incoming = delta_schema(incoming)
    if table is None:
        return incoming
    problems: list[str] = []
    missing = [f.name for f in table if incoming.get_field_index(f.name) < 0]
    extra = [f.name for f in incoming if table.get_field_index(f.name) < 0]
    for field in table:
        index = incoming.get_field_index(field.name)
        if index >= 0 and not can_cast(incoming.field(index).type, field.type):
            problems.append(
                f"'{field.name}' is {field.type} in the table but "
                f"{incoming.field(index).type} in the input"
            )
    if problems:
        raise SchemaMismatchError(
            f"The input does not match the schema of table '{table_name}': {'; '.join(problems)}.",
            hint="Convert those columns in the source, or ingest into a new table.",
        )
    if (missing or extra) and not evolve:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"new column(s) {', '.join(extra)}")
        raise SchemaMismatchError(
            f"The input does not match the schema of table '{table_name}': {'; '.join(parts)}.",
            hint="Ingest with --evolve (evolve=True) to add new columns and fill missing ones "
            "with nulls.",
        )
    fields = list(table) + [incoming.field(name) for name in extra]
    return pa.schema(fields)


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """Return a JSON-friendly description of ``schema``: name, type and nullability per column.

    Example:
        >>> schema_to_json(pa.schema([("a", pa.int64())]))
        [{'name': 'a', 'type': 'int64', 'nullable': True}]
    """
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def column_types(
    schema: pa.Schema | None, overrides: Mapping[str, str] | None
) -> dict[str, pa.DataType]:
    """Return the explicit column types to parse a text source with: table types, then overrides."""
    types = {f.name: f.type for f in schema} if schema is not None else {}
    for name, type_name in (overrides or {}).items():
        types[name] = parse_type(type_name)
    return types

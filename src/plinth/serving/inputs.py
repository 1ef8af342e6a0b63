"""Request inputs: JSON bodies to columns, checked against the model's signature.

A request is turned into ``columns`` (name → list of values, one per row) as early as
possible; every later stage (feature lookup, batching, prediction, logging) works on columns.
Checks name the field: a missing, extra or mistyped field raises
:class:`~plinth.errors.SchemaMismatchError`, which the API answers with 422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from plinth.errors import SchemaMismatchError

Columns = dict[str, list[Any]]

#: JSON value types accepted for each signature kind (``None`` is accepted everywhere).
_INT64 = 2**63
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "float": (float, int),
    "integer": (int,),
    "boolean": (bool,),
    "string": (str,),
    "categorical": (str, int),
    "datetime": (str, int),
    "date": (str,),
    "binary": (str,),
}


def columns_from_json(body: Any) -> tuple[Columns, int]:
    """Columns and row count of a v1 predict body: ``{"records": [...]}`` or
    ``{"columns": {...}}`` (a bare list of records, or one record, is accepted too); for a
    tensor model, ``{"inputs": [[...], ...]}`` (one row per item).

    Example:
        >>> columns_from_json({"records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]})
        ({'a': [1, 2], 'b': ['x', 'y']}, 2)
        >>> columns_from_json({"columns": {"a": [1, 2]}})
        ({'a': [1, 2]}, 2)
    """
    if isinstance(body, list):
        return _from_records(body)
    if not isinstance(body, dict):
        raise SchemaMismatchError(
            "The request body is not a JSON object.",
            hint='Send {"records": [{...}, ...]} or {"columns": {"name": [...]}}.',
        )
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list):
            raise SchemaMismatchError("Field 'records' is not a list of objects.")
        return _from_records(records)
    if "columns" in body:
        return _from_columns(body["columns"])
    for key in ("inputs", "instances"):
        rows = body.get(key)
        if isinstance(rows, list) and rows and isinstance(rows[0], list | int | float):
            return {"inputs": rows}, len(rows)  # a tensor model's rows
    if "instances" in body:
        return _from_records(body["instances"])
    return _from_records([body])


def _from_records(records: Sequence[Any]) -> tuple[Columns, int]:
    if not records:
        raise SchemaMismatchError("The request has no rows.", hint="Send at least one record.")
    first = records[0]
    if not isinstance(first, dict):
        raise SchemaMismatchError("Record 0 is not a JSON object.")
    names = list(first)
    if len(records) == 1:
        return {k: [v] for k, v in first.items()}, 1
    columns: Columns = {k: [] for k in names}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise SchemaMismatchError(f"Record {i} is not a JSON object.")
        if len(record) != len(names) or any(k not in record for k in names):
            odd = set(record) ^ set(names)
            raise SchemaMismatchError(
                f"Record {i} does not have the same fields as record 0 (field '{sorted(odd)[0]}').",
                hint="Give every record the same fields.",
            )
        for k in names:
            columns[k].append(record[k])
    return columns, len(records)


def _from_columns(data: Any) -> tuple[Columns, int]:
    if not isinstance(data, dict) or not data:
        raise SchemaMismatchError("Field 'columns' is not a non-empty object of lists.")
    lengths = set()
    for name, values in data.items():
        if not isinstance(values, list):
            raise SchemaMismatchError(f"Column '{name}' is not a list.")
        lengths.add(len(values))
    if len(lengths) != 1:
        raise SchemaMismatchError(
            "The columns have different lengths.", hint="Give every column one value per row."
        )
    n = lengths.pop()
    if n == 0:
        raise SchemaMismatchError("The request has no rows.", hint="Send at least one row.")
    return dict(data), n


class InputSchema:
    """What one model version takes from a request, and the checks on it.

    ``columns`` are the signature's (name, kind) pairs; ``fetched`` are the ones the server
    reads from the online store (a request may still send them, as request-time values);
    ``keys`` are the entity keys the lookup needs (required unless the request carries every
    fetched feature itself), accepted even when the model does not take them.

    Example:
        >>> schema = InputSchema([("hour", "integer"), ("temp", "float")], fetched={"temp"},
        ...                      keys=["origin"])
        >>> schema.check({"hour": [5], "origin": ["JFK"]})
        >>> schema.check({"hour": ["5"], "origin": ["JFK"]})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        plinth.errors.SchemaMismatchError: Field 'hour' row 0 is a string ...
    """

    def __init__(
        self,
        columns: Sequence[tuple[str, str]] | None,
        *,
        fetched: Iterable[str] = (),
        keys: Sequence[str] = (),
        key_kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.columns = list(columns) if columns is not None else None
        self.fetched = set(fetched)
        self.keys = list(keys)
        self.kinds = dict(self.columns or [])
        # Entity keys the model does not take are checked against their source column's kind.
        self.key_kinds = {
            k: v for k, v in (key_kinds or {}).items() if k in self.keys and k not in self.kinds
        }
        self.required = [n for n, _ in self.columns or [] if n not in self.fetched]
        self.allowed = set(self.kinds) | set(self.keys)

    def check(self, columns: Mapping[str, list[Any]]) -> None:
        """Raise :class:`SchemaMismatchError` naming the first missing, extra or mistyped field."""
        if self.columns is None:
            return
        for name in self.required:
            if name not in columns:
                raise SchemaMismatchError(
                    f"Field '{name}' is missing; the model requires it.",
                    hint=f"Send the fields: {', '.join(self.required + self.key_only)}.",
                )
        needs_lookup = any(name not in columns for name in self.fetched)
        for name in self.keys if needs_lookup else ():
            if name not in columns:
                raise SchemaMismatchError(
                    f"Field '{name}' is missing; the online feature lookup needs it as an "
                    "entity key.",
                    hint=f"Send the entity keys: {', '.join(self.keys)}.",
                )
        for name, values in columns.items():
            if name not in self.allowed:
                raise SchemaMismatchError(
                    f"Field '{name}' is not an input of the model.",
                    hint=f"The model takes: {', '.join(self.required + self.key_only)}.",
                )
            kind = self.kinds.get(name) or self.key_kinds.get(name)
            accepted = _ACCEPTS.get(kind) if kind else None
            if accepted is None:
                continue
            for row, value in enumerate(values):
                if value is None:
                    continue
                if not isinstance(value, accepted) or (
                    isinstance(value, bool) and kind != "boolean"
                ):
                    raise SchemaMismatchError(
                        f"Field '{name}' row {row} is {_json_type(value)}, but the model "
                        f"expects {kind}.",
                        hint=f"Send '{name}' as {kind} values.",
                    )
                if isinstance(value, int) and not -_INT64 <= value < _INT64:
                    raise SchemaMismatchError(
                        f"Field '{name}' row {row} is {value}, beyond a 64-bit integer.",
                        hint=f"Send '{name}' between -2**63 and 2**63 - 1.",
                    )

    @property
    def key_only(self) -> list[str]:
        """Entity keys the model does not take itself (sent only for the lookup)."""
        return [k for k in self.keys if k not in self.kinds]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"

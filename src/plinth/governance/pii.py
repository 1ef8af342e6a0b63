"""Personal data in model inputs: which columns carry it, and hashing or dropping them.

A data contract marks a column as personal data with ``pii: hash`` or ``pii: drop`` (see
:class:`plinth.quality.contracts.ColumnRules`). A model's inputs and logged entity keys are
traced back to the contracted columns they come from:

- a feature ``view__feature`` comes from its view's source table: from the column it copies,
  or from every column its SQL expression names (``lower(email)`` is as personal as
  ``email``);
- an entity key comes from the source tables of the views (among those the inputs name)
  joined on it;
- any other input comes from the spine table of the model's training set, column for column.

Where several sources disagree, the strictest wins (``drop`` over ``hash``). Hashing is
HMAC-SHA256, hex, keyed with a secret derived from the encryption key when one is configured,
else with a random per-workspace salt kept in storage: equal values hash equally within a
workspace, so logged rows can still be joined and counted, but the values cannot be read back.

Example:
    >>> import pyarrow as pa
    >>> table = pa.table({"email": ["a@x.org", None], "age": [30, 40]})
    >>> out = protect(table, {"email": "hash", "age": "drop"}, secret=b"k" * 32)
    >>> out.column_names, len(out.column("email")[0].as_py()), out.column("email")[1].as_py()
    (['email'], 64, None)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from plinth.quality.contracts import PiiAction

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.quality.contracts import ColumnRules
    from plinth.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = [
    "MASK",
    "SALT_KEY",
    "contract_rules",
    "feature_sources",
    "hash_value",
    "hashing_secret",
    "mask",
    "model_pii",
    "pii_columns",
    "protect",
    "strictest",
]

#: What :func:`mask` shows in place of a value of a column marked ``pii: drop``.
MASK = "***"
#: Storage key of the per-workspace salt used when no encryption key is configured.
SALT_KEY = "governance/pii_salt"
_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_]*)')
_RANK = {"hash": 1, "drop": 2}


def strictest(*actions: PiiAction | None) -> PiiAction | None:
    """The strictest of some actions: ``drop`` over ``hash`` over none.

    Example:
        >>> strictest("hash", None, "drop"), strictest(None, "hash"), strictest()
        ('drop', 'hash', None)
    """
    found = [a for a in actions if a is not None]
    return max(found, key=_RANK.__getitem__) if found else None


def _identifiers(expression: str) -> set[str]:
    """Names an SQL expression may refer to (quoted or bare; string literals are removed)."""
    without_strings = re.sub(r"'(?:[^']|'')*'", " ", expression)
    return {
        quoted.replace('""', '"') if quoted else bare
        for quoted, bare in _IDENTIFIER.findall(without_strings)
    }


class _Contracts:
    """The latest contract of each table, read once per lookup."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._found: dict[str, Any] = {}

    def get(self, table: str) -> Any:
        # Catalog errors propagate: an unknown policy must not pass for "no personal data".
        if table not in self._found:
            applied = self.ws.quality.contract(table)
            self._found[table] = None if applied is None else applied.contract
        return self._found[table]

    def pii(self, table: str) -> dict[str, PiiAction]:
        contract = self.get(table)
        return {} if contract is None else contract.pii_columns()


def _views(ws: Workspace) -> dict[str, Any]:
    return {name: view for name, (view, _) in ws.features.views().items()}


def feature_sources(ws: Workspace, inputs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """For inputs named ``view__feature``: the view's source table and the feature's column or
    SQL expression.

    Example:
        >>> # feature_sources(ws, ["weather__temp", "distance"])
        >>> # {'weather__temp': ('weather', 'temp')}
    """
    views = _views(ws)
    out: dict[str, tuple[str, str]] = {}
    for name in inputs:
        view_name, sep, feature = name.partition("__")
        view = views.get(view_name) if sep else None
        if view is None or feature not in view.features:
            continue
        out[name] = (view.source, view.features[feature])
    return out


def contract_rules(ws: Workspace, inputs: Iterable[str]) -> dict[str, ColumnRules]:
    """The contract rules of each input that is a feature copied straight from a contracted
    column of its view's source table.

    Example:
        >>> # contract_rules(ws, ["weather__temp"])["weather__temp"].min
    """
    contracts = _Contracts(ws)
    out: dict[str, ColumnRules] = {}
    for name, (table, column) in feature_sources(ws, inputs).items():
        contract = contracts.get(table)
        if contract is not None and column in contract.columns:
            out[name] = contract.columns[column]
    return out


def pii_columns(
    ws: Workspace, columns: Iterable[str], *, tables: Iterable[str] = ()
) -> dict[str, PiiAction]:
    """Which of ``columns`` (model inputs, entity keys) carry personal data, and the action.

    Entity keys are traced through the views that the ``view__feature`` columns name.
    ``tables`` are further tables whose columns feed inputs of the same name (a training
    set's spine).

    Example:
        >>> # pii_columns(ws, ["customers__email", "customer_id", "x"], tables=["orders"])
        >>> # {'customers__email': 'hash'}
    """
    names = list(dict.fromkeys(columns))
    contracts = _Contracts(ws)
    views = _views(ws)
    found: dict[str, PiiAction | None] = {}
    sources = feature_sources(ws, names)
    for name, (table, expression) in sources.items():
        marked = contracts.pii(table)
        if expression in marked:
            found[name] = marked[expression]
        else:
            found[name] = strictest(*(marked.get(i) for i in _identifiers(expression)))
    keyed: dict[str, list[PiiAction | None]] = {}
    used = {name.partition("__")[0] for name in sources}
    for view in (v for name, v in views.items() if name in used):
        marked = contracts.pii(view.source)
        for key in view.join_keys:
            keyed.setdefault(key, []).append(marked.get(key))
    spines = [contracts.pii(t) for t in dict.fromkeys(tables)]
    for name in names:
        if name in sources:
            continue
        from_spine = [marked.get(name) for marked in spines]
        found[name] = strictest(*keyed.get(name, []), *from_spine)
    return {name: action for name, action in found.items() if action is not None}


def model_pii(
    ws: Workspace, model: str, versions: Iterable[int], columns: Iterable[str] | None = None
) -> dict[str, PiiAction]:
    """The personal-data columns among what some versions of a model take and log.

    ``columns`` defaults to each version's signature inputs; the spine tables of the versions'
    training sets count as sources too.

    Example:
        >>> # model_pii(ws, "delay", [3])  -> {'passengers__email': 'drop'}
    """
    from plinth.catalog.models import TrainingSet
    from plinth.errors import NotFoundError

    names: list[str] = list(columns or [])
    tables: list[str] = []
    for version in versions:
        try:
            info = ws.models.get(f"{model}:{version}")
        except NotFoundError:
            continue
        if columns is None and info.signature is not None:
            specs = info.signature.inputs
            if isinstance(specs, tuple | list):
                names.extend(spec.name for spec in specs)
        if info.training_set_id:
            with ws.catalog.session() as session:
                record = session.get(TrainingSet, info.training_set_id)
                spine = dict(record.spine) if record is not None else {}
            if spine.get("table"):
                tables.append(str(spine["table"]))
    return pii_columns(ws, names, tables=tables)


def hashing_secret(ws: Workspace) -> bytes:
    """The key of PII hashes: derived from the encryption key when one is configured, else
    the workspace's random salt (created in storage on first use).

    Example:
        >>> # len(hashing_secret(ws))
        >>> # 32
    """
    from plinth.errors import NotFoundError

    cipher = ws.cipher
    if cipher is not None:
        return cipher.derive("pii-hash")
    storage = ws.storage
    try:
        salt = storage.read_bytes(SALT_KEY)
    except NotFoundError:
        storage.put_bytes(SALT_KEY, os.urandom(32))
        # Read back what is stored: a concurrent first writer may have won.
        salt = storage.read_bytes(SALT_KEY)
    if len(salt) < 16:
        from plinth.errors import IntegrityError

        raise IntegrityError(
            f"The PII hashing salt '{SALT_KEY}' in storage '{storage.url}' is damaged.",
            hint="Restore it from a backup; a new salt would make new hashes differ from old.",
        )
    return salt


def hash_value(value: Any, secret: bytes) -> str | None:
    """The keyed hash (HMAC-SHA256, hex) of one value's text; ``None`` stays ``None``.

    Use it to hash your own keys the same way before joining them with a prediction log.

    Example:
        >>> hash_value(42, b"k" * 32) == hash_value("42", b"k" * 32)
        True
        >>> hash_value(None, b"k" * 32) is None
        True
    """
    if value is None:
        return None
    return hmac.new(secret, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


def protect(
    table: pa.Table,
    actions: Mapping[str, PiiAction],
    *,
    secret: bytes,
    existing: pa.Schema | None = None,
) -> pa.Table:
    """``table`` with personal-data columns hashed (as hex strings) or dropped.

    Values are hashed from their Python text, ``str(value)`` (``42``, ``-1.0``,
    ``2024-01-01 00:00:00+00:00``), as :func:`hash_value` does. A column to hash that
    ``existing`` (the schema of the table being appended to) holds with another type than
    string cannot take the hashes, so it is dropped instead, with a warning.

    Example:
        >>> import pyarrow as pa
        >>> protect(pa.table({"a": [1], "b": [2]}), {"b": "drop"}, secret=b"k").column_names
        ['a']
    """
    import pyarrow as pa

    out = table
    for name, action in actions.items():
        if name not in out.column_names:
            continue
        index = out.column_names.index(name)
        if action == "hash" and existing is not None and existing.get_field_index(name) >= 0:
            stored = existing.field(name).type
            if not (pa.types.is_string(stored) or pa.types.is_large_string(stored)):
                log.warning(
                    "column %s is personal data to hash, but the log stores it as %s: "
                    "it is left out instead",
                    name,
                    stored,
                )
                action = "drop"
        if action == "drop":
            out = out.remove_column(index)
            continue
        values = out.column(index).to_pylist()
        hashed = pa.array([hash_value(v, secret) for v in values], pa.string())
        out = out.set_column(index, pa.field(name, pa.string()), hashed)
    return out


def mask(table: pa.Table, actions: Mapping[str, PiiAction], *, secret: bytes) -> pa.Table:
    """``table`` for display, with personal-data columns masked in place.

    A column marked ``hash`` shows the keyed hash of each value (the same as prediction logs
    hold, so rows can still be matched); one marked ``drop`` shows :data:`MASK`. Unlike
    :func:`protect`, no column is removed, and nulls stay null.

    Example:
        >>> import pyarrow as pa
        >>> out = mask(pa.table({"a": ["x", None], "b": [1, 2]}), {"b": "drop"}, secret=b"k")
        >>> out.column("b").to_pylist(), out.column("a").to_pylist()
        (['***', '***'], ['x', None])
    """
    import pyarrow as pa

    out = table
    for name, action in actions.items():
        if name not in out.column_names:
            continue
        index = out.column_names.index(name)
        values = out.column(index).to_pylist()
        if action == "drop":
            shown = [None if v is None else MASK for v in values]
        else:
            shown = [hash_value(v, secret) for v in values]
        out = out.set_column(index, pa.field(name, pa.string()), pa.array(shown, pa.string()))
    return out

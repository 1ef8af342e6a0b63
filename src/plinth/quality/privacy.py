"""Personal data in table profiles: which columns a contract marks, and withholding them.

A column of a table's data contract marked ``pii`` (``hash``, ``drop`` or ``true``) is
personal data. Its profile keeps only aggregates that reveal no value (:data:`PROFILE_KEPT`:
type, kind, counts of values and nulls, null share, distinct count) and is marked
``"pii": true``; its top values, extremes, mean, spread, quantiles and histogram are never
stored or shown. :func:`sanitize_profile` is the one place that does it: profiles are
sanitized before they are stored and again whenever they are read, with the table's current
contract, so a column marked after its profile was stored is withheld too. Applying a
contract that marks columns also rewrites the table's stored profiles
(:func:`scrub_stored_profiles`), so their values leave the catalog as well.

Renderers ask :func:`is_withheld` of a column's profile entry and show :data:`WITHHELD` in
place of its values; none of them looks at the contract itself.

Example:
    >>> profile = {"row_count": 2, "columns": {"email": {"type": "string", "kind": "categorical",
    ...     "count": 2, "nulls": 0, "null_fraction": 0.0, "distinct": 2,
    ...     "top": [{"value": "a@x.org", "count": 1}], "other_count": 1}}}
    >>> clean = sanitize_profile(profile, {"email"})
    >>> clean["columns"]["email"]["pii"], "top" in clean["columns"]["email"]
    (True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.catalog import Catalog
    from plinth.quality.contracts import PiiAction

__all__ = [
    "PROFILE_KEPT",
    "WITHHELD",
    "is_withheld",
    "sanitize_profile",
    "scrub_stored_profiles",
    "table_pii",
]

#: What renderers show in place of the values of a personal-data column.
WITHHELD = "withheld (personal data)"
#: The profile fields a personal-data column keeps: aggregates that reveal no value.
PROFILE_KEPT = ("type", "kind", "count", "nulls", "null_fraction", "distinct")


def table_pii(catalog: Catalog, table: str) -> dict[str, PiiAction]:
    """The columns the latest contract of ``table`` marks as personal data, and their action.

    Read from the catalog, so code without a workspace (profiles, quality summaries) can ask.
    A table without a contract has none; a quarantine table (``people__quarantine``) has its
    table's.

    Example:
        >>> # table_pii(ws.catalog, "passengers")  -> {'email': 'hash'}
    """
    from sqlalchemy import select

    from plinth.catalog.models import ContractVersion
    from plinth.quality.contracts import Contract
    from plinth.quality.gate import QUARANTINE_SUFFIX

    table = table.removesuffix(QUARANTINE_SUFFIX) or table
    query = (
        select(ContractVersion.spec)
        .where(ContractVersion.table_name == table)
        .order_by(ContractVersion.version.desc())
        .limit(1)
    )
    with catalog.session() as session:
        spec = session.scalar(query)
    return {} if spec is None else Contract.model_validate(spec).pii_columns()


def is_withheld(entry: Mapping[str, Any] | None) -> bool:
    """Whether a column's profile entry is personal data whose values are withheld.

    Example:
        >>> is_withheld({"kind": "numeric", "pii": True}), is_withheld({"kind": "numeric"})
        (True, False)
    """
    return entry is not None and bool(entry.get("pii"))


def sanitize_profile(profile: Mapping[str, Any], pii: Iterable[str]) -> dict[str, Any]:
    """Return ``profile`` with the columns named in ``pii`` reduced to :data:`PROFILE_KEPT`.

    Each such column is marked ``"pii": true``; a column already marked stays withheld even
    when ``pii`` no longer names it (its values were never stored). Other columns and fields
    are kept as they are; ``profile`` itself is not changed.

    Example:
        >>> p = {"row_count": 1, "columns": {"age": {"kind": "numeric", "count": 1,
        ...      "min": 31, "max": 31, "mean": 31.0, "quantiles": {"0.5": 31}}}}
        >>> sanitize_profile(p, ["age"])["columns"]["age"]
        {'kind': 'numeric', 'count': 1, 'pii': True}
    """
    marked = set(pii)
    columns: dict[str, Any] = {}
    for name, entry in (profile.get("columns") or {}).items():
        if isinstance(entry, Mapping) and (name in marked or is_withheld(entry)):
            kept = {key: entry[key] for key in PROFILE_KEPT if key in entry}
            columns[name] = {**kept, "pii": True}
        else:
            columns[name] = entry
    return {**profile, "columns": columns}


def scrub_stored_profiles(session: Session, table: str, pii: Iterable[str]) -> int:
    """Rewrite the stored profiles of ``table`` that still hold values of ``pii`` columns.

    Runs inside the caller's transaction (the one that records the contract marking them);
    returns how many profiles were rewritten.

    Example:
        >>> # with ws.catalog.session() as s: scrub_stored_profiles(s, "people", ["email"])
        >>> # 2
    """
    from sqlalchemy import select

    from plinth.catalog.models import Profile

    marked = set(pii)
    if not marked:
        return 0
    changed = 0
    for row in session.scalars(select(Profile).where(Profile.table_name == table)):
        columns = dict(row.columns or {})
        if all(is_withheld(columns[n]) for n in marked if isinstance(columns.get(n), Mapping)):
            continue
        row.columns = sanitize_profile({"columns": columns}, marked)["columns"]
        changed += 1
    return changed

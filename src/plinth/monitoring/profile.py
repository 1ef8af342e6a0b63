"""A served model version's monitoring profile: its reference, fitted once and kept in the catalog.

The profile holds the reference histograms of every model input and of the prediction (the
model scores a sample of the reference rows, so prediction drift compares like with like), and
the bounds traffic is checked against: the reference's range for numbers, and the data
contract's ``min``/``max``/``allowed`` rules where an input is a feature read straight from a
contracted column. Inputs that carry personal data (``pii`` in a contract, see
:mod:`plinth.governance.pii`) are left out of the profile. It also records how far the
prediction log has been folded into the profile's hourly buckets (see
:mod:`plinth.monitoring.history`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.governance.pii import contract_rules, model_pii
from plinth.monitoring.drift import Reference, fit_references, reference_from_dict

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

PREDICTION = "prediction"
#: Reference rows the model scores for the prediction's reference; a sample beyond this.
SCORED_ROWS = 200_000


@dataclass(frozen=True)
class Bounds:
    """What a column's traffic is checked against: reference range, contract rules."""

    low: float | None = None
    high: float | None = None
    contract_min: float | None = None
    contract_max: float | None = None
    allowed: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bounds:
        """Rebuild bounds from :meth:`to_dict`.

        Example:
            >>> Bounds.from_dict({"low": 0.0, "allowed": ["a"]}).allowed
            ('a',)
        """
        allowed = data.get("allowed")
        return cls(
            data.get("low"),
            data.get("high"),
            data.get("contract_min"),
            data.get("contract_max"),
            tuple(str(a) for a in allowed) if allowed is not None else None,
        )


@dataclass
class MonitorProfile:
    """The reference of one model version, as stored in ``monitor_profiles``."""

    id: int
    model: str
    version: int
    reference: str
    references: dict[str, Reference]
    bounds: dict[str, Bounds]
    reference_rows: int
    log_version: int | None
    inputs: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Monitored columns: the inputs, then the prediction when it is profiled."""
        return list(self.references)


def reference_spec(
    ws: Workspace, uri: str, reference: str | None = None, where: str | None = None
) -> str:
    """The text that names a profile's reference, e.g. ``training-set ts_1 where month < 6``.

    Example:
        >>> # reference_spec(ws, "delay@champion")  -> 'training-set ts_3f...'
    """
    if reference:
        name, _, version = reference.partition("@")
        resolved = version or str(ws.lake.version(name).version)
        spec = f"table {name}@{resolved}"
    else:
        info = ws.models.get(uri)
        spec = f"training-set {info.training_set_id}"
    return f"{spec} where {where}" if where else spec


def ensure_profile(
    ws: Workspace, uri: str, *, reference: str | None = None, where: str | None = None
) -> MonitorProfile:
    """The model version's profile for this reference, fitted and stored on first use.

    Example:
        >>> # profile = ensure_profile(ws, "delay@champion", where="month < 6")
    """
    from sqlalchemy import select

    from plinth.catalog.models import MonitorProfile as Row
    from plinth.monitoring.service import reference_table

    info = ws.models.get(uri)
    spec = reference_spec(ws, uri, reference, where)
    query = select(Row).where(
        Row.model_name == info.name, Row.model_version == info.version, Row.reference == spec
    )
    with ws.catalog.session() as session:
        row = session.scalar(query)
        if row is not None:
            return _from_row(row)
    table, inputs = reference_table(ws, uri, reference=reference, where=where)
    # Personal data (contract columns marked pii) is never profiled: a reference would keep
    # its values (categories) in the catalog and the reports.
    private = model_pii(ws, info.name, [info.version], inputs)
    references = fit_references(table, [c for c in inputs if c not in private])
    scores = _reference_predictions(ws, uri, table)
    if scores is not None:
        references.update(fit_references(scores))
    bounds = _bounds(ws, table, references)
    body = {
        "inputs": inputs,
        "columns": {name: ref.to_dict() for name, ref in references.items()},
        "bounds": {name: b.to_dict() for name, b in bounds.items()},
    }
    now = datetime.now(UTC)
    with ws.catalog.session() as session:
        # Another process may have fitted it meanwhile: keep the first.
        row = session.scalar(query)
        if row is None:
            row = Row(
                model_name=info.name,
                model_version=info.version,
                reference=spec,
                body=body,
                reference_rows=table.num_rows,
                log_version=None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
        return _from_row(row)


def _from_row(row: Any) -> MonitorProfile:
    body = row.body
    return MonitorProfile(
        id=row.id,
        model=row.model_name,
        version=row.model_version,
        reference=row.reference,
        references={k: reference_from_dict(v) for k, v in body["columns"].items()},
        bounds={k: Bounds.from_dict(v) for k, v in body["bounds"].items()},
        reference_rows=row.reference_rows,
        log_version=row.log_version,
        inputs=list(body.get("inputs", [])),
    )


def _reference_predictions(ws: Workspace, uri: str, table: pa.Table) -> pa.Table | None:
    """The model's predictions on (a sample of) the reference, or None for non-scalar output."""
    import pyarrow as pa

    if table.num_rows > SCORED_ROWS:
        rng = np.random.default_rng(0)
        table = table.take(np.sort(rng.choice(table.num_rows, SCORED_ROWS, replace=False)))
    out = np.asarray(ws.models.load(uri).predict(table.to_pandas()))
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 1 or not np.issubdtype(out.dtype, np.number):
        return None
    return pa.table({PREDICTION: out.astype(np.float64)})


def _bounds(ws: Workspace, table: pa.Table, references: dict[str, Reference]) -> dict[str, Bounds]:
    import pyarrow.compute as pc

    from plinth.monitoring.drift import NumericReference

    contract = _contract_rules(ws, [c for c in references if c != PREDICTION])
    out: dict[str, Bounds] = {}
    for name, ref in references.items():
        low = high = None
        if isinstance(ref, NumericReference) and name in table.column_names:
            extremes = pc.min_max(table.column(name))
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
        rules = contract.get(name, {})
        out[name] = Bounds(
            float(low) if low is not None else None,
            float(high) if high is not None else None,
            rules.get("min"),
            rules.get("max"),
            rules.get("allowed"),
        )
    return out


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _contract_rules(ws: Workspace, inputs: list[str]) -> dict[str, dict[str, Any]]:
    """Contract bounds of inputs that are features copied from a contracted column."""
    out: dict[str, dict[str, Any]] = {}
    for name, rules in contract_rules(ws, inputs).items():
        found: dict[str, Any] = {}
        for key in ("min", "max"):
            value = _plain(getattr(rules, key))
            if isinstance(value, int | float):
                found[key] = float(value)
        allowed = _plain(rules.allowed)
        if allowed is not None:
            found["allowed"] = tuple(str(a) for a in allowed)
        out[name] = found
    return out

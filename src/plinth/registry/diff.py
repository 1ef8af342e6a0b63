"""Two model versions side by side: attributes, parameters, metrics, signature, training data
versions and features, with the rows that differ marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.registry.provenance import run_detail, training_inputs
from plinth.registry.records import ModelVersionInfo, json_ready
from plinth.registry.signature import TensorSpec

if TYPE_CHECKING:
    from plinth.workspace import Workspace

#: Sections in the order they are shown.
SECTIONS = ("attribute", "param", "metric", "signature", "data", "feature")


@dataclass(frozen=True)
class DiffRow:
    """One compared key: its section, the value in each version (``None``: absent)."""

    section: str
    key: str
    a: Any
    b: Any
    differs: bool


@dataclass(frozen=True)
class ModelDiff:
    """The comparison of two versions, row by row.

    Example:
        >>> d = ModelDiff("models:/m/1", "models:/m/2", [DiffRow("metric", "auc", 0.7, 0.8, True)])
        >>> d.to_dict()["metric"]
        {'auc': [0.7, 0.8]}
    """

    a: str
    b: str
    rows: list[DiffRow]

    def section(self, name: str) -> list[DiffRow]:
        """The rows of one section (see :data:`SECTIONS`)."""
        return [row for row in self.rows if row.section == name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: per section, each key's pair of values; and the differing keys."""
        out: dict[str, Any] = {"a": self.a, "b": self.b}
        for section in SECTIONS:
            out[section] = {row.key: [row.a, row.b] for row in self.section(section)}
        out["differs"] = [f"{row.section}:{row.key}" for row in self.rows if row.differs]
        return json_ready(out)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _signature_rows(info: ModelVersionInfo) -> dict[str, str]:
    out: dict[str, str] = {}
    signature = info.signature
    if signature is None:
        return out
    if isinstance(signature.inputs, TensorSpec):
        out["input"] = signature.inputs.describe()
    else:
        for column in signature.inputs:
            out[f"input:{column.name}"] = f"{column.type} ({column.dtype})"
    outputs = signature.describe_outputs()
    if outputs:
        out["output"] = "; ".join(outputs)
    return out


def _facts(ws: Workspace, info: ModelVersionInfo) -> dict[str, dict[str, Any]]:
    run = run_detail(ws, info.run_id)
    training = training_inputs(ws, info.training_set_id)
    data: dict[str, Any] = {}
    feature: dict[str, Any] = {}
    if info.feature_service:
        feature["service"] = f"{info.feature_service} v{info.feature_service_version}"
    if training is not None:
        data["training_set"] = training.id
        data["training_rows"] = training.row_count
        for table, version in training.table_versions().items():
            data[f"table:{table}"] = version
        for view, version in training.views.items():
            feature[f"view:{view}"] = version
        feature["columns"] = ", ".join(training.features)
    return {
        "attribute": {
            "version": info.version,
            "flavor": info.flavor,
            "created_at": info.created_at,
            "run_id": info.run_id,
            "code_commit": info.code_commit,
            "description": info.description,
            "aliases": ", ".join(info.aliases) or None,
        },
        "param": dict(run.params) if run is not None else {},
        "metric": dict(info.metrics),
        "signature": _signature_rows(info),
        "data": data,
        "feature": feature,
    }


def diff(ws: Workspace, a: ModelVersionInfo, b: ModelVersionInfo) -> ModelDiff:
    """Compare two versions (see :class:`ModelDiff`).

    Example:
        >>> # diff(ws, ws.models.get("delay:1"), ws.models.get("delay:2")).to_dict()
    """
    left, right = _facts(ws, a), _facts(ws, b)
    rows: list[DiffRow] = []
    for section in SECTIONS:
        keys = list(dict.fromkeys([*left[section], *right[section]]))
        if section in ("param", "metric"):
            keys.sort()
        for key in keys:
            x, y = left[section].get(key), right[section].get(key)
            rows.append(DiffRow(section, key, x, y, not _same(x, y)))
    return ModelDiff(a.uri, b.uri, rows)

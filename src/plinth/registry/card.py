"""Model cards: what a model version is, what it was trained on, how well it does, what it
should not be used for, where it came from, and the EU AI Act Annex IV technical
documentation fields, filled from the catalog where it knows the answer.

A card is built from the catalog each time it is asked for (nothing is stored), as plain
JSON-ready data (:meth:`ModelCard.to_dict`) rendered to Markdown (:meth:`ModelCard.markdown`).

Where the card's text comes from:

* **Tags** of the version (``ws.models.register(..., tags=...)``), then of its run, fill the
  fields only a person can answer: ``intended_use``, ``out_of_scope``, ``users``,
  ``provider``, ``instructions_for_use``, ``limitations``, ``risks``, ``risk_management``,
  ``human_oversight``, ``data_assumptions``, ``metrics_rationale``, ``predetermined_changes``,
  ``monitoring``, ``standards``, ``declaration_of_conformity``.
* **Slices**: run metrics named ``slice/<slice>/<metric>`` (``slice/origin=JFK/auc``) form
  the per-group table; the slice name is everything between the first and the last ``/``.
* **Limitations** are derived: the time range of the training data, model inputs missing in
  more than 20% of training rows, no metrics or slices, no signature, a dirty git tree.

Example:
    >>> # card = ws.models.card("delay@champion"); print(card.markdown())
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth.catalog.lineage import Node, walk
from plinth.catalog.models import (
    GateDecision,
    ModelAliasEvent,
    ModelVersion,
    QualityResult,
    RegisteredModel,
)
from plinth.errors import NotFoundError
from plinth.registry.annex_iv import TO_COMPLETE, annex_iv
from plinth.registry.provenance import TrainingInputs, run_detail, training_inputs
from plinth.registry.records import ModelVersionInfo, json_ready
from plinth.registry.versions import MISSING_WARN

if TYPE_CHECKING:
    from plinth.tracking.service import RunDetail
    from plinth.workspace import Workspace

__all__ = ["CARD_TAGS", "TO_COMPLETE", "ModelCard", "build_card", "split_metrics"]

SLICE_PREFIX = "slice/"
#: Columns of a training table's profile shown on the card at most.
PROFILE_COLUMNS = 40
LINEAGE_DEPTH = 6
#: Tags the card reads (from the version, then from its run).
CARD_TAGS = (
    "intended_use",
    "out_of_scope",
    "users",
    "provider",
    "instructions_for_use",
    "limitations",
    "risks",
    "risk_management",
    "human_oversight",
    "data_assumptions",
    "metrics_rationale",
    "predetermined_changes",
    "monitoring",
    "standards",
    "declaration_of_conformity",
)


@dataclass(frozen=True)
class ModelCard:
    """The model card of one version: JSON-ready data, and its Markdown rendering.

    Example:
        >>> card = ModelCard({"model": {"name": "m", "version": 1}})
        >>> card.name, card.version
        ('m', 1)
    """

    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's name."""
        return str(self.data["model"]["name"])

    @property
    def version(self) -> int:
        """The version number."""
        return int(self.data["model"]["version"])

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (a copy).

        Example:
            >>> # json.dumps(ws.models.card("delay:3").to_dict())
        """
        return copy.deepcopy(self.data)

    def markdown(self, *, annex: bool = True) -> str:
        """The card as a Markdown document (``annex=False``: without the Annex IV section).

        Example:
            >>> # Path("MODEL_CARD.md").write_text(ws.models.card("delay:3").markdown())
        """
        from plinth.registry.card_markdown import render

        return render(self.data, annex=annex)


# -- gathering -----------------------------------------------------------------------------


def split_metrics(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, dict]]:
    """Separate overall metrics from slice metrics named ``slice/<slice>/<metric>``.

    Example:
        >>> split_metrics({"auc": 0.7, "slice/origin=JFK/auc": 0.72})
        ({'auc': 0.7}, {'origin=JFK': {'auc': 0.72}})
    """
    overall: dict[str, float] = {}
    slices: dict[str, dict[str, float]] = {}
    for key in sorted(metrics):
        value = metrics[key]
        if key.startswith(SLICE_PREFIX) and key.count("/") >= 2:
            name, _, metric = key[len(SLICE_PREFIX) :].rpartition("/")
            if name and metric:
                slices.setdefault(name, {})[metric] = value
                continue
        overall[key] = value
    return overall, slices


def _tags(info: ModelVersionInfo, run: RunDetail | None) -> dict[str, str]:
    merged = dict(run.tags) if run is not None else {}
    merged.update(info.tags)
    return merged


def _profile_summary(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    from plinth.quality.privacy import is_withheld

    columns = []
    for name, entry in list(profile["columns"].items())[:PROFILE_COLUMNS]:
        summary = {
            "name": name,
            "kind": entry.get("kind"),
            "null_fraction": entry.get("null_fraction"),
            "distinct": entry.get("distinct"),
            "min": entry.get("min"),
            "max": entry.get("max"),
            "mean": entry.get("mean"),
        }
        if is_withheld(entry):  # personal data: get_profile kept counts only
            summary["pii"] = True
        columns.append(summary)
    return {
        "row_count": profile["row_count"],
        "column_count": len(profile["columns"]),
        "columns": columns,
        "created_at": profile.get("created_at"),
    }


def _quality(ws: Workspace, table: str, version: int) -> str | None:
    with ws.catalog.session() as session:
        row = session.scalar(
            select(QualityResult)
            .where(QualityResult.table_name == table, QualityResult.table_version == version)
            .order_by(QualityResult.id.desc())
            .limit(1)
        )
        if row is None:
            return None
        return (
            f"{row.status} (contract v{row.contract_version}, {row.rows_checked} rows checked, "
            f"{row.rows_quarantined} quarantined)"
        )


def _tables(ws: Workspace, training: TrainingInputs) -> list[dict[str, Any]]:
    from plinth.quality.profiles import get_profile

    spine = training.spine_table
    out = []
    for table, version in training.table_versions().items():
        entry: dict[str, Any] = {
            "table": table,
            "version": version,
            "role": "spine" if spine is not None and spine == (table, version) else "features",
            "row_count": None,
            "created_at": None,
            "source": None,
        }
        try:
            found = ws.lake.version(table, version)
            entry.update(
                row_count=found.row_count, created_at=found.created_at, source=found.source
            )
        except NotFoundError:
            entry["source"] = {"missing": "the table version is no longer in the catalog"}
        entry["quality"] = _quality(ws, table, version)
        entry["profile"] = _profile_summary(get_profile(ws.catalog, table, version))
        out.append(entry)
    return out


def _training(ws: Workspace, info: ModelVersionInfo) -> dict[str, Any]:
    training = training_inputs(ws, info.training_set_id)
    summary = info.details.get("training_data") or {}
    time_range = dict(summary.get("time_range") or {})
    if time_range:  # versions registered before a column was marked as personal data
        from plinth.governance.pii import model_pii

        hidden = model_pii(ws, info.name, [info.version], columns=list(time_range))
        time_range = {k: v for k, v in time_range.items() if k not in hidden}
    data: dict[str, Any] = {
        "training_set": None,
        "tables": [],
        "feature_service": (
            {"name": info.feature_service, "version": info.feature_service_version}
            if info.feature_service
            else None
        ),
        "feature_views": {},
        "features": [],
        "time_range": time_range,
    }
    if training is not None:
        data["training_set"] = {
            "id": training.id,
            "row_count": training.row_count,
            "created_at": training.created_at,
        }
        data["tables"] = _tables(ws, training)
        data["feature_views"] = dict(training.views)
        data["features"] = list(training.features)
    elif info.training_set_id:
        data["training_set"] = {"id": info.training_set_id, "missing": True}
    return data


def _limitations(
    info: ModelVersionInfo, training: dict[str, Any], overall: dict, slices: dict, tags: dict
) -> list[str]:
    out: list[str] = []
    for column, (low, high) in (training.get("time_range") or {}).items():
        out.append(
            f"Trained on data from {low} to {high} (column '{column}'); behaviour on data "
            "outside this range has not been evaluated."
        )
    summary = info.details.get("training_data") or {}
    inputs = info.signature.columns if info.signature and info.signature.columns else None
    watched = inputs or training.get("features") or list(summary.get("columns", {}))
    for column in watched:
        entry = (summary.get("columns") or {}).get(column)
        if entry and entry.get("null_fraction", 0) > MISSING_WARN:
            out.append(
                f"Input '{column}' is missing in {entry['null_fraction']:.0%} of the training "
                "rows; predictions lean on how the model handles missing values."
            )
    if training.get("training_set") is None:
        out.append("No training set is linked to this version, so its training data is unknown.")
    if not overall:
        out.append("No evaluation metrics were recorded for this version.")
    if not slices:
        out.append("No per-group (slice) metrics were recorded, so performance across groups "
                   "is unknown.")  # fmt: skip
    if info.signature is None:
        out.append("The version has no signature: inputs are not checked when it predicts.")
    if (info.details.get("git") or {}).get("dirty"):
        out.append("The code had uncommitted changes when the model was trained (dirty git "
                   "tree), so the commit alone does not reproduce it.")  # fmt: skip
    if tags.get("limitations"):
        out.append(tags["limitations"])
    return out


def _lineage(ws: Workspace, info: ModelVersionInfo) -> dict[str, list[dict[str, Any]]]:
    node = Node("model_version", info.lineage_id)
    with ws.catalog.session() as session:
        up = walk(session, node, "up", depth=LINEAGE_DEPTH)
        down = walk(session, node, "down", depth=2)

    def rows(edges: list[Any]) -> list[dict[str, Any]]:
        return [
            {"source": str(e.source), "relation": e.relation, "target": str(e.target)}
            for e in edges
        ]

    return {"upstream": rows(up), "downstream": rows(down)}


def _lifecycle(ws: Workspace, info: ModelVersionInfo) -> dict[str, Any]:
    with ws.catalog.session() as session:
        versions = [
            {"version": v, "created_at": at, "created_by": by, "description": d}
            for v, at, by, d in session.execute(
                select(
                    ModelVersion.version,
                    ModelVersion.created_at,
                    ModelVersion.created_by,
                    ModelVersion.description,
                )
                .where(ModelVersion.model_name == info.name)
                .order_by(ModelVersion.version)
            )
        ]
        events = [
            {
                "alias": e.alias,
                "action": e.action,
                "version": e.version,
                "previous_version": e.previous_version,
                "reason": e.reason,
                "at": e.at,
                "by": e.by,
            }
            for e in session.scalars(
                select(ModelAliasEvent)
                .where(
                    ModelAliasEvent.model_name == info.name,
                    (ModelAliasEvent.version == info.version)
                    | (ModelAliasEvent.previous_version == info.version),
                )
                .order_by(ModelAliasEvent.id)
            )
        ]
        gates = [
            {
                "passed": g.passed,
                "champion_version": g.champion_version,
                "policy": g.policy,
                "reasons": list(g.reasons or []),
                "decided_at": g.decided_at,
                "decided_by": g.decided_by,
            }
            for g in session.scalars(
                select(GateDecision)
                .where(
                    GateDecision.model_name == info.name,
                    GateDecision.candidate_version == info.version,
                )
                .order_by(GateDecision.id)
            )
        ]
        description = session.scalar(
            select(RegisteredModel.description).where(RegisteredModel.name == info.name)
        )
    return {
        "versions": versions,
        "alias_events": events,
        "gates": gates,
        "model_description": description,
    }


def _run_section(run: RunDetail | None) -> dict[str, Any] | None:
    if run is None:
        return None
    env = run.environment or {}
    return {
        "id": run.id,
        "experiment": run.experiment,
        "status": run.status,
        "launcher": run.launcher,
        "entry_point": run.entry_point,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "params": dict(run.params),
        "python": (env.get("python") or {}).get("version"),
        "host": env.get("host"),
        "cpu": (env.get("cpu") or {}).get("model"),
        "gpus": len((env.get("gpu") or {}).get("devices") or []),
        "resources": {
            "processes": len(run.resources),
            "wall_seconds": max((r.wall_seconds for r in run.resources), default=None),
            "cpu_seconds": sum(r.cpu_seconds for r in run.resources) if run.resources else None,
            "gpu_seconds": sum(r.gpu_seconds for r in run.resources) if run.resources else None,
            "peak_rss_bytes": max((r.peak_rss_bytes for r in run.resources), default=None),
        },
    }


def build_card(ws: Workspace, info: ModelVersionInfo) -> ModelCard:
    """Gather a version's card from the catalog (see the module docstring).

    Example:
        >>> # build_card(ws, ws.models.get("delay:3")).to_dict()["training_data"]["tables"]
    """
    run = run_detail(ws, info.run_id)
    tags = _tags(info, run)
    meta = info.details.get("meta") or {}
    metrics = dict(run.metrics) if run is not None else {}
    metrics.update(info.metrics)
    overall, slices = split_metrics(metrics)
    training = _training(ws, info)
    lifecycle = _lifecycle(ws, info)
    git = info.details.get("git") or {}
    data: dict[str, Any] = {
        "model": {
            "name": info.name,
            "version": info.version,
            "uri": info.uri,
            "flavor": info.flavor,
            "class": meta.get("class"),
            "library": meta.get("library"),
            "library_version": meta.get("version"),
            "created_at": info.created_at,
            "created_by": info.created_by,
            "run_id": info.run_id,
            "code_commit": info.code_commit,
            "code_branch": git.get("branch"),
            "code_dirty": git.get("dirty"),
            "manifest_digest": info.manifest_digest,
            "aliases": list(info.aliases),
            "signature": info.signature.to_dict() if info.signature else None,
        },
        "intended_use": {
            "description": info.description,
            "model_description": lifecycle["model_description"],
            "intended_use": tags.get("intended_use"),
            "out_of_scope": tags.get("out_of_scope"),
            "users": tags.get("users"),
        },
        "training_data": training,
        "evaluation": {"metrics": overall, "slices": slices},
        "limitations": _limitations(info, training, overall, slices, tags),
        "lineage": _lineage(ws, info),
        "lifecycle": {k: v for k, v in lifecycle.items() if k != "model_description"},
        "run": _run_section(run),
        "tags": {k: tags[k] for k in CARD_TAGS if k in tags},
    }
    data = _ready(data)
    data["annex_iv"] = annex_iv(data, tags)
    return ModelCard(data)


def _ready(value: Any) -> Any:
    """JSON-ready card data, with times to the second."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return {str(k): _ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ready(v) for v in value]
    return json_ready(value)

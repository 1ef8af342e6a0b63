"""Rebuild the service records from the control-plane server's JSON.

Each ``*_of`` function takes one JSON object as the server answers it (the record's
``to_dict()`` form: times as ISO 8601, NaN as ``null``) and returns the record a local call
returns, so both backends hand back equal values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.client.base import AlertDetail, Identity

if TYPE_CHECKING:
    from plinth.catalog.audit import AuditRecord, Verification
    from plinth.cost.accounting import CostReport
    from plinth.cost.budgets import BudgetStatus
    from plinth.cost.prices import PriceTable
    from plinth.cost.waste import WasteReport
    from plinth.features.definitions import Definition
    from plinth.features.registry import Change
    from plinth.features.service import FeatureViewInfo
    from plinth.governance.lineage import LineageGraph
    from plinth.governance.roles import RoleBindingInfo, RoleListing
    from plinth.governance.tokens import NewToken, TokenInfo
    from plinth.lake.records import TableInfo, VersionInfo
    from plinth.monitoring.alerts import AlertEventInfo, AlertInfo
    from plinth.monitoring.service import WindowDrift
    from plinth.pipelines.service import PipelineRunDetail, PipelineRunSummary
    from plinth.quality.observability import QualitySummary
    from plinth.quality.service import AppliedContract
    from plinth.registry import AliasEvent, ModelSummary, ModelVersionInfo
    from plinth.registry.card import ModelCard
    from plinth.registry.diff import ModelDiff
    from plinth.serving.deployments import DeploymentInfo, RevisionInfo
    from plinth.tracking.history import MetricHistory
    from plinth.tracking.service import RunDetail, RunSummary

Json = Mapping[str, Any]


def when(value: Any) -> datetime | None:
    """An ISO 8601 time (or ``None``) as a datetime.

    Example:
        >>> when("2026-01-02T03:04:05+00:00").year
        2026
    """
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def number(value: Any) -> float:
    """A JSON number, ``null`` read back as NaN (how the services hold a missing value).

    Example:
        >>> math.isnan(number(None))
        True
    """
    return math.nan if value is None else float(value)


def _fields(cls: type, data: Json) -> dict[str, Any]:
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}


def version_of(data: Json) -> VersionInfo:
    """A table version."""
    from plinth.lake.records import VersionInfo

    return VersionInfo(**{**_fields(VersionInfo, data), "created_at": when(data["created_at"])})


def table_of(data: Json) -> TableInfo:
    """A table with its latest version."""
    from plinth.lake.records import TableInfo

    latest = data.get("latest")
    return TableInfo(
        **{
            **_fields(TableInfo, data),
            "created_at": when(data["created_at"]),
            "latest": version_of(latest) if latest else None,
        }
    )


def run_summary_of(data: Json) -> RunSummary:
    """A run as lists show it."""
    from plinth.tracking.service import RunSummary

    return RunSummary(**_summary_fields(data))


def _summary_fields(data: Json) -> dict[str, Any]:
    from plinth.tracking.service import RunSummary

    return {
        **_fields(RunSummary, data),
        "started_at": when(data["started_at"]),
        "ended_at": when(data.get("ended_at")),
        "metrics": {k: number(v) for k, v in (data.get("metrics") or {}).items()},
        "params": dict(data.get("params") or {}),
        "tags": dict(data.get("tags") or {}),
    }


def _node(text: str) -> Any:
    from plinth.catalog.lineage import Node

    kind, _, ident = text.partition(":")
    return Node(kind, ident)


def run_detail_of(data: Json) -> RunDetail:
    """Everything recorded about one run."""
    from plinth.catalog.lineage import Edge
    from plinth.tracking.service import (
        ArtifactInfo,
        MetricSummary,
        ResourceInfo,
        RunDetail,
    )

    summaries = {
        key: MetricSummary(
            last=number(m.get("last")),
            last_step=int(m["last_step"]),
            min=number(m.get("min")),
            max=number(m.get("max")),
            count=int(m["count"]),
        )
        for key, m in (data.get("metric_summaries") or {}).items()
    }
    artifacts = [
        ArtifactInfo(a["name"], a["kind"], a["digest"], int(a["size"]), when(a["created_at"]))  # type: ignore[arg-type]
        for a in data.get("artifacts") or []
    ]
    resources = [ResourceInfo(**_fields(ResourceInfo, r)) for r in data.get("resources") or []]
    inputs = [
        Edge(_node(e["source"]), _node(e["target"]), e["relation"], e.get("details"))
        for e in data.get("inputs") or []
    ]
    return RunDetail(
        **{
            **_fields(RunDetail, data),
            **_summary_fields(data),
            "metric_summaries": summaries,
            "artifacts": artifacts,
            "resources": resources,
            "inputs": inputs,
            "children": list(data.get("children") or []),
        }
    )


def history_of(data: Json, run_id: str) -> MetricHistory:
    """One metric series (``total`` falls back to the points sent when the server omits it)."""
    from plinth.tracking.history import MetricHistory

    steps = [int(s) for s in data.get("steps") or []]
    stamps = data.get("timestamps") or []
    return MetricHistory(
        run_id=data.get("run_id") or run_id,
        key=data["key"],
        steps=steps,
        values=[number(v) for v in data.get("values") or []],
        timestamps=[when(t) for t in stamps],  # type: ignore[misc]
        total=int(data.get("total", len(steps))),
    )


def model_summary_of(data: Json) -> ModelSummary:
    """A registered model as lists show it."""
    from plinth.registry import ModelSummary

    return ModelSummary(
        **{
            **_fields(ModelSummary, data),
            "created_at": when(data["created_at"]),
            "latest_at": when(data.get("latest_at")),
            "aliases": {k: int(v) for k, v in (data.get("aliases") or {}).items()},
        }
    )


def model_version_of(data: Json) -> ModelVersionInfo:
    """One registered model version."""
    from plinth.registry import ModelVersionInfo, Signature

    signature = data.get("signature")
    return ModelVersionInfo(
        **{
            **_fields(ModelVersionInfo, data),
            "signature": Signature.from_dict(signature) if signature else None,
            "metrics": {k: number(v) for k, v in (data.get("metrics") or {}).items()},
            "created_at": when(data["created_at"]),
            "aliases": tuple(data.get("aliases") or ()),
        }
    )


def alias_event_of(data: Json | None) -> AliasEvent | None:
    """One alias change (``None`` stays ``None``: the alias already pointed there)."""
    from plinth.registry import AliasEvent

    if not data:
        return None
    return AliasEvent(**{**_fields(AliasEvent, data), "at": when(data["at"])})


def model_diff_of(data: Json) -> ModelDiff:
    """Two versions side by side (the rows of ``ModelDiff``; ``created_at`` as a time)."""
    from plinth.registry.diff import DiffRow, ModelDiff

    rows = []
    for row in data.get("rows") or []:
        a, b = row.get("a"), row.get("b")
        if row["section"] == "attribute" and row["key"] == "created_at":
            a, b = (when(v) if v is not None else None for v in (a, b))
        rows.append(DiffRow(row["section"], row["key"], a, b, bool(row["differs"])))
    return ModelDiff(str(data["a"]), str(data["b"]), rows)


def pipeline_run_of(data: Json) -> PipelineRunSummary:
    """A pipeline run as lists show it."""
    from plinth.pipelines.service import PipelineRunSummary

    return PipelineRunSummary(
        **{
            **_fields(PipelineRunSummary, data),
            "started_at": when(data["started_at"]),
            "ended_at": when(data.get("ended_at")),
        }
    )


def deployment_of(data: Json) -> DeploymentInfo:
    """A deployment as the catalog holds it."""
    from plinth.serving.deployments import DeploymentInfo, DeploymentSpec

    return DeploymentInfo(
        **{
            **_fields(DeploymentInfo, data),
            "spec": DeploymentSpec.from_dict(data["spec"]),
            "updated_at": when(data["updated_at"]),
        }
    )


def alert_of(data: Json) -> AlertInfo:
    """An alert."""
    from plinth.monitoring.alerts import AlertInfo

    return AlertInfo(
        **{
            **_fields(AlertInfo, data),
            "fired_at": when(data["fired_at"]),
            "last_seen_at": when(data["last_seen_at"]),
            "resolved_at": when(data.get("resolved_at")),
        }
    )


def audit_of(data: Json) -> AuditRecord:
    """An audit event."""
    from plinth.catalog.audit import AuditRecord

    return AuditRecord(**{**_fields(AuditRecord, data), "at": when(data["at"])})


def verification_of(data: Json) -> Verification:
    """The outcome of checking the audit chain."""
    from plinth.catalog.audit import Verification

    return Verification(**_fields(Verification, data))


def lineage_of(data: Json) -> LineageGraph:
    """A lineage graph."""
    from plinth.governance.lineage import LineageGraph

    return LineageGraph.from_dict(dict(data))


def identity_of(data: Json) -> Identity:
    """Who the caller is."""
    return Identity(
        subject=data["subject"],
        roles=dict(data.get("roles") or {}),
        project=data.get("project") or "",
        permissions=sorted(data.get("permissions") or []),
    )


def quality_result_of(data: Json) -> dict[str, Any]:
    """One stored quality result (``created_at`` as a datetime).

    Example:
        >>> quality_result_of({"status": "passed", "created_at": None})["status"]
        'passed'
    """
    return {**data, "created_at": when(data.get("created_at"))}


def feature_view_of(data: Json) -> FeatureViewInfo:
    """An applied feature view: the API's flat form split into version, watermark and spec.

    Example:
        >>> # feature_view_of(client._get("/features/views/weather")).watermark
    """
    from plinth.features.service import FeatureViewInfo

    spec = {k: v for k, v in data.items() if k not in ("version", "watermark")}
    return FeatureViewInfo(data["name"], int(data["version"]), spec, when(data.get("watermark")))


def pipeline_run_detail_of(data: Json) -> PipelineRunDetail:
    """One pipeline run with its steps.

    Example:
        >>> # pipeline_run_detail_of(client._get("/pipelines/runs/prun_01J...")).steps
    """
    from plinth.pipelines.service import PipelineRunDetail, StepRunInfo

    steps = [
        StepRunInfo(
            **{
                **_fields(StepRunInfo, step),
                "started_at": when(step.get("started_at")),
                "ended_at": when(step.get("ended_at")),
            }
        )
        for step in data.get("steps") or []
    ]
    return PipelineRunDetail(
        **{
            **_fields(PipelineRunDetail, data),
            "started_at": when(data["started_at"]),
            "ended_at": when(data.get("ended_at")),
            "steps": steps,
        }
    )


def revision_of(data: Json) -> RevisionInfo:
    """One revision of a deployment.

    Example:
        >>> # [revision_of(r) for r in client._get("/deployments/delay")["revisions"]]
    """
    from plinth.serving.deployments import DeploymentSpec, RevisionInfo

    return RevisionInfo(
        **{
            **_fields(RevisionInfo, data),
            "spec": DeploymentSpec.from_dict(data["spec"]),
            "at": when(data["at"]),
        }
    )


def stats_of(data: Json) -> dict[str, Any]:
    """A deployment's serving figures (``first`` and ``last`` as datetimes).

    Example:
        >>> # stats_of(client._get("/deployments/delay/stats"))["first"]
    """
    return {**data, "first": when(data.get("first")), "last": when(data.get("last"))}


def window_drift_of(data: Json) -> WindowDrift:
    """One window of a model's drift report.

    Example:
        >>> # window_drift_of(page["items"][0]).report.share_drifted
    """
    from plinth.monitoring.drift import ColumnDrift, DriftReport
    from plinth.monitoring.service import WindowDrift

    columns = []
    for column in data.get("columns") or []:
        values = _fields(ColumnDrift, column)
        values["psi"] = number(values.get("psi"))
        for key in ("new_categories", "missing_categories"):
            values[key] = tuple(values.get(key) or ())
        columns.append(ColumnDrift(**values))
    report = DriftReport(columns, float(data["share_drifted"]), bool(data["drifted"]))
    return WindowDrift(when(data.get("start")), when(data.get("end")), int(data["rows"]), report)


def alert_event_of(data: Json) -> AlertEventInfo:
    """One event of an alert's history.

    Example:
        >>> # [alert_event_of(e) for e in client._get("/alerts/7")["events"]]
    """
    from plinth.monitoring.alerts import AlertEventInfo

    return AlertEventInfo(**{**_fields(AlertEventInfo, data), "at": when(data["at"])})


def alert_detail_of(data: Json) -> AlertDetail:
    """An alert with its events.

    Example:
        >>> # alert_detail_of(client._get("/alerts/7")).alert.state
    """
    return AlertDetail(alert_of(data), [alert_event_of(e) for e in data.get("events") or []])


def card_of(data: Json) -> ModelCard:
    """A model card.

    Example:
        >>> # card_of(client._get("/models/delay/card")).markdown()
    """
    from plinth.registry.card import ModelCard

    return ModelCard(dict(data))


def cost_report_of(data: Json) -> CostReport:
    """A cost report: its items rebuilt as the records its ``by`` groups into.

    Example:
        >>> # cost_report_of(client._get("/cost", {"by": "run"})).items[0].usd
    """
    from plinth.cost.accounting import (
        CostReport,
        ModelCost,
        PipelineRunCost,
        RunCost,
        Spend,
        StepCost,
        Window,
    )
    from plinth.cost.standing import ReplicaSize, ServingCost, StorageCost

    def run(item: Json) -> RunCost:
        ranks = tuple(
            (float(wall), float(cpu), int(rss), float(gpu))
            for wall, cpu, rss, gpu in item.get("ranks") or []
        )
        requested = item.get("requested")
        return RunCost(
            **{
                **_fields(RunCost, item),
                "started_at": when(item["started_at"]),
                "ranks": ranks,
                "requested": dict(requested) if requested is not None else None,
            }
        )

    def step(item: Json) -> StepCost:
        return StepCost(**{**_fields(StepCost, item), "runs": tuple(item.get("runs") or ())})

    def pipeline(item: Json) -> PipelineRunCost:
        steps = tuple(step(s) for s in item.get("steps") or [])
        return PipelineRunCost(
            **{
                **_fields(PipelineRunCost, item),
                "started_at": when(item["started_at"]),
                "steps": steps,
            }
        )

    def model(item: Json) -> ModelCost:
        return ModelCost(**{**_fields(ModelCost, item), "runs": tuple(item.get("runs") or ())})

    def serving(item: Json) -> ServingCost:
        replica = ReplicaSize(**_fields(ReplicaSize, item["replica"]))
        return ServingCost(**{**_fields(ServingCost, item), "replica": replica})

    by = str(data["by"])
    build = {"run": run, "pipeline": pipeline, "model": model, "deployment": serving}[by]
    return CostReport(
        by=by,
        window=Window(when(data.get("since")), when(data["until"])),  # type: ignore[arg-type]
        items=[build(item) for item in data.get("items") or []],
        total_usd=float(data["total_usd"]),
        spend=Spend(**_fields(Spend, data["spend"])),
        storage=StorageCost(**_fields(StorageCost, data["storage"])),
        price_overrides=tuple(data.get("price_overrides") or ()),
    )


def quality_summary_of(data: Json) -> QualitySummary:
    """A table version's observability summary (events as unsaved catalog ``Event`` rows).

    Example:
        >>> # quality_summary_of(client._get("/tables/flights/summary")).freshness
    """
    from plinth.catalog.models import Event
    from plinth.quality.drift import ColumnShift
    from plinth.quality.observability import (
        Freshness,
        QualitySummary,
        SchemaChange,
        VolumePoint,
    )

    fresh = data.get("freshness")
    freshness = None
    if fresh:
        freshness = Freshness(
            **{
                **_fields(Freshness, fresh),
                "newest": when(fresh.get("newest")),
                "checked_at": when(fresh["checked_at"]),
            }
        )
    events = [
        Event(**{**e, "created_at": when(e.get("created_at"))})  # type: ignore[misc]
        for e in data.get("events") or []
    ]
    return QualitySummary(
        table=data["table"],
        version=int(data["version"]),
        reference_version=data.get("reference_version"),
        freshness=freshness,
        volume=[
            VolumePoint(int(p["version"]), int(p["row_count"]), when(p["created_at"]))  # type: ignore[arg-type]
            for p in data.get("volume") or []
        ],
        schema_changes=[
            SchemaChange(**_fields(SchemaChange, c)) for c in data.get("schema_changes") or []
        ],
        shifts=[ColumnShift(**_fields(ColumnShift, c)) for c in data.get("shifts") or []],
        events=events,
        lineage=[dict(edge) for edge in data.get("lineage") or []],
        row_count=int(data.get("row_count") or 0),
        created_at=when(data["created_at"]),  # type: ignore[arg-type]
        withheld=list(data.get("withheld") or []),
    )


def definitions_of(items: list[Json]) -> list[tuple[str, Definition, int]]:
    """Applied feature-store definitions as ``(kind, definition, version)``, in the order sent
    (entities first: a view is rebuilt over the entities listed before it).

    Example:
        >>> definitions_of([{"kind": "entity", "version": 1, "name": "id", "join_keys": ["id"]}])
        [('entity', Entity(name='id', join_keys=('id',), description=''), 1)]
    """
    from plinth.features.definitions import Entity, FeatureService, FeatureView

    entities: dict[str, Entity] = {}
    found: list[tuple[str, Definition, int]] = []
    for item in items:
        kind, version = str(item["kind"]), int(item["version"])
        spec = {k: v for k, v in item.items() if k not in ("kind", "version")}
        definition: Definition
        if kind == "entity":
            definition = entities[spec["name"]] = Entity.from_spec(spec)
        elif kind == "view":
            definition = FeatureView.from_spec(spec, entities)
        else:
            definition = FeatureService.from_spec(spec)
        found.append((kind, definition, version))
    return found


def applied_contract_of(data: Json) -> AppliedContract:
    """A contract version (``AppliedContract.to_dict()``), its contract rebuilt from the spec.

    Example:
        >>> applied_contract_of({"table": "t", "version": 2, "changed": False, "origin": None,
        ...                      "contract": {"table": "t"}}).version
        2
    """
    from plinth.quality.contracts import Contract
    from plinth.quality.service import AppliedContract

    return AppliedContract(
        table=data["table"],
        version=int(data["version"]),
        contract=Contract.model_validate(data["contract"]),
        changed=bool(data.get("changed")),
        origin=data.get("origin"),
    )


def change_of(data: Json) -> Change:
    """What applying one feature definition did.

    Example:
        >>> change_of({"kind": "view", "name": "w", "version": 2, "status": "changed"}).status
        'changed'
    """
    from plinth.features.registry import Change

    return Change(**_fields(Change, data))


# -- administration and cost reports (tokens, roles, waste, prices, budgets) -----------------


def token_of(data: Json) -> TokenInfo:
    """A token's record (never its secret)."""
    from plinth.governance.tokens import TokenInfo

    times = ("created_at", "expires_at", "revoked_at", "last_used_at")
    fields = _fields(TokenInfo, data)
    return TokenInfo(**{**fields, **{k: when(data.get(k)) for k in times}})


def new_token_of(data: Json) -> NewToken:
    """A token just created, with its secret."""
    from plinth.governance.tokens import NewToken

    return NewToken(token_of(data), str(data["token"]))


def binding_of(data: Json) -> RoleBindingInfo:
    """One role binding."""
    from plinth.governance.roles import RoleBindingInfo

    return RoleBindingInfo(
        **{**_fields(RoleBindingInfo, data), "granted_at": when(data["granted_at"])}
    )


def role_listing_of(data: Json) -> RoleListing:
    """The role bindings and the implicit role holder, if any."""
    from plinth.governance.roles import RoleListing

    implicit = data.get("implicit")
    return RoleListing(
        [binding_of(b) for b in data["bindings"]], dict(implicit) if implicit else None
    )


def waste_of(data: Json) -> WasteReport:
    """A waste report (its items most money wasted first, as sent)."""
    from plinth.cost.waste import Utilization, WasteReport

    items = []
    for item in data["items"]:
        fields = _fields(Utilization, item)
        for key in ("utilization", "requested_usd", "used_usd", "wasted_usd"):
            fields[key] = number(fields[key])
        items.append(Utilization(**fields))
    return WasteReport(items)


def price_table_of(data: Json) -> PriceTable:
    """The server's price table, by key in the server's order."""
    from plinth.cost.prices import Price, PriceTable

    prices = data.get("prices", data)
    table = {key: Price(**_fields(Price, p)) for key, p in prices.items()}
    return PriceTable(table, as_of=data.get("as_of") if "prices" in data else None)


def budget_status_of(data: Json) -> BudgetStatus:
    """One project's budget this month and what its alerts did."""
    from plinth.cost.budgets import BudgetStatus

    fields = _fields(BudgetStatus, data)
    return BudgetStatus(**{**fields, "budget_usd": float(fields["budget_usd"])})

"""Standing costs, billed for as long as they are held: serving replicas and stored bytes.

Serving: replicas x uptime x a replica's price per hour, and that cost per 1,000 predictions.
A replica reserves 1 vCPU and 2 GiB (the ``plinth deploy`` defaults) unless the deployment's
spec says otherwise: ``{"replicas": 3, "resources": {"cpu": 2, "memory": "4Gi", "gpu": 1,
"gpu_model": "t4"}}``. No process records how long a server ran, so uptime is estimated
(see :func:`serving_costs`); requests and their latencies come from the prediction log.

Storage: the lake's and the artifact store's bytes x the GiB-month price.

Example:
    >>> # [(s.name, s.usd, s.per_1000) for s in serving_costs(ws, parse_since("30d"))]
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from plinth._core.clock import as_utc, utcnow
from plinth.cost.prices import GIB, PriceTable, prices_for

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = [
    "DEFAULT_REPLICA",
    "MONTH_HOURS",
    "ReplicaSize",
    "ServingCost",
    "StorageCost",
    "per_1000",
    "serving_costs",
    "storage_cost",
]

#: Hours in a billing month, as AWS counts them.
MONTH_HOURS = 730.0


@dataclass(frozen=True)
class ReplicaSize:
    """What one serving replica reserves: CPUs, memory bytes, GPUs and the GPU model."""

    cpu: float = 1.0
    memory: int = 2 * GIB
    gpu: float = 0.0
    gpu_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The size as JSON-ready data."""
        return asdict(self)

    def usd_per_hour(self, prices: PriceTable) -> float:
        """The replica's price per hour.

        Example:
            >>> from plinth.cost.prices import price_table
            >>> round(ReplicaSize().usd_per_hour(price_table()), 6)
            0.044625
        """
        gpu = self.gpu * prices.gpu_hour(self.gpu_model) if self.gpu else 0.0
        return self.cpu * prices.cpu_core_hour + self.memory / GIB * prices.memory_gb_hour + gpu


#: A replica when the deployment spec names no ``resources`` (the ``plinth deploy`` defaults).
DEFAULT_REPLICA = ReplicaSize()


@dataclass(frozen=True)
class ServingCost:
    """A deployment's serving cost in the window and per 1,000 predictions.

    ``recorded`` is False for a model served without a deployment record (one default replica).
    """

    name: str
    model: str
    target: str
    recorded: bool
    replicas: int
    replica: ReplicaSize
    uptime_seconds: float
    uptime_basis: str
    predictions: int
    busy_seconds: float
    usd: float
    per_1000: float | None

    def to_dict(self) -> dict[str, Any]:
        """The cost as JSON-ready data."""
        return asdict(self)


def per_1000(usd: float, predictions: int) -> float | None:
    """USD per 1,000 predictions, or ``None`` without predictions.

    Example:
        >>> per_1000(0.5, 2000)
        0.25
    """
    return usd / predictions * 1000 if predictions else None


def _log_stats(
    ws: Workspace, model: str, start: datetime | None, end: datetime
) -> tuple[int, float, Any, Any]:
    """``(predictions, busy seconds, first answer, last answer)`` of a model's log in the window.

    Predictions are the rows answered on the primary and canary routes (shadow answers are not
    served); busy time is the sum of each request's latency, shadow requests included.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from plinth.catalog.models import LakeTable
    from plinth.serving.prediction_log import log_table

    name = log_table(model)
    with ws.catalog.session() as session:
        if session.scalar(select(LakeTable.id).where(LakeTable.name == name)) is None:
            return 0, 0.0, None, None
    dataset = ws.lake.scan(name)
    wanted = ("request_id", "answered_at", "route", "latency_ms")
    columns = [c for c in wanted if c in dataset.schema.names]
    if "answered_at" not in columns:
        return 0, 0.0, None, None
    where = ds.field("answered_at") <= end
    if start:
        where = where & (ds.field("answered_at") >= start)
    table = dataset.to_table(columns=columns, filter=where)
    if table.num_rows == 0:
        return 0, 0.0, None, None
    served = table.num_rows
    if "route" in columns:
        served -= int(pc.sum(pc.equal(table["route"], "shadow")).as_py() or 0)
    busy = 0.0
    if "latency_ms" in columns and "request_id" in columns:
        keys = ["request_id", "route"] if "route" in columns else ["request_id"]
        per_request = table.group_by(keys).aggregate([("latency_ms", "max")])
        busy = float(pc.sum(per_request["latency_ms_max"]).as_py() or 0.0) / 1000
    first, last = pc.min_max(table["answered_at"]).values()
    return served, busy, first.as_py(), last.as_py()


def _replica(spec: dict[str, Any]) -> tuple[int, ReplicaSize]:
    from plinth.training.launcher import parse_memory

    asked = spec.get("resources") or {}
    memory = asked.get("memory", DEFAULT_REPLICA.memory)
    return int(spec.get("replicas") or 1), ReplicaSize(
        cpu=float(asked.get("cpu", DEFAULT_REPLICA.cpu)),
        memory=parse_memory(memory) if isinstance(memory, str) else int(memory),
        gpu=float(asked.get("gpu", DEFAULT_REPLICA.gpu)),
        gpu_model=asked.get("gpu_model"),
    )


def serving_costs(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
) -> list[ServingCost]:
    """The serving cost of every deployment, and of every model served without one, by name.

    No process records how long a server ran, so uptime is estimated. A ``ray`` or ``k8s``
    deployment keeps its replicas running: uptime is the time since it was first applied,
    within the window. A ``local`` deployment, or a model with a prediction log and no
    deployment (``plinth serve`` of a URI), is taken to run from its first logged answer in
    the window to its last: an underestimate when the server idled before or after.

    Example:
        >>> # [(s.name, s.usd, s.per_1000) for s in serving_costs(ws, parse_since("30d"))]
    """
    from plinth.catalog.models import Deployment, RegisteredModel

    prices = prices or prices_for(ws.settings)
    end = as_utc(now) if now else utcnow()
    start = as_utc(since) if since else None
    with ws.catalog.session() as session:
        deployments = session.execute(
            select(
                Deployment.name, Deployment.model_name, Deployment.target, Deployment.spec,
                Deployment.created_at,
            ).order_by(Deployment.name)
        ).all()  # fmt: skip
        models = set(session.scalars(select(RegisteredModel.name)))
    deployed = {d[1] for d in deployments}
    logs = {m: _log_stats(ws, m, start, end) for m in sorted(models | deployed)}
    found = []
    for name, model, target, spec, created in deployments:
        replicas, replica = _replica(dict(spec or {}))
        predictions, busy, first, last = logs[model]
        if target in ("ray", "k8s"):
            applied = max(created, start) if start else created
            uptime, basis = max(0.0, (end - applied).total_seconds()), "since applied"
        else:
            uptime = (last - first).total_seconds() if first else 0.0
            basis = "prediction log span"
        usd = replicas * uptime / 3600 * replica.usd_per_hour(prices)
        found.append(
            ServingCost(
                name, model, target, True, replicas, replica, uptime, basis, predictions, busy,
                usd, per_1000(usd, predictions),
            )
        )  # fmt: skip
    for model, (predictions, busy, first, last) in logs.items():
        if model in deployed or not predictions:
            continue
        uptime = (last - first).total_seconds()
        usd = uptime / 3600 * DEFAULT_REPLICA.usd_per_hour(prices)
        found.append(
            ServingCost(
                model, model, "serve", False, 1, DEFAULT_REPLICA, uptime, "prediction log span",
                predictions, busy, usd, per_1000(usd, predictions),
            )
        )  # fmt: skip
    return sorted(found, key=lambda s: s.name)


@dataclass(frozen=True)
class StorageCost:
    """Lake and artifact-store bytes, their price per month, and today's size for the window."""

    lake_bytes: int
    artifact_bytes: int
    usd_per_month: float
    window_seconds: float
    usd: float

    def to_dict(self) -> dict[str, Any]:
        """The cost as JSON-ready data."""
        return asdict(self)


def storage_cost(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
) -> StorageCost:
    """The lake's and artifact store's bytes, priced per month and for the window's length.

    Lake bytes are each table's latest version (files only older versions hold, until
    vacuumed, are not counted); artifact bytes are listed from the store. The window starts
    at ``since`` or at the workspace's first record, whichever is later.

    Example:
        >>> # storage_cost(ws).usd_per_month
    """
    from plinth.catalog.models import PipelineRun, Run, TableVersion

    prices = prices or prices_for(ws.settings)
    end = as_utc(now) if now else utcnow()
    latest = (
        select(TableVersion.table_id, func.max(TableVersion.version).label("v"))
        .group_by(TableVersion.table_id)
        .subquery()
    )
    newest = (latest.c.table_id == TableVersion.table_id) & (latest.c.v == TableVersion.version)
    with ws.catalog.session() as session:
        lake = int(session.scalar(select(func.sum(TableVersion.bytes)).join(latest, newest)) or 0)
        firsts = [
            session.scalar(select(func.min(c)))
            for c in (TableVersion.created_at, Run.started_at, PipelineRun.started_at)
        ]
    first = min((as_utc(f) for f in firsts if f), default=end)
    start = max(first, as_utc(since)) if since else first
    artifacts = _artifact_bytes(ws)
    per_month = (lake + artifacts) / GIB * prices.storage_gb_month
    seconds = max(0.0, (end - start).total_seconds())
    return StorageCost(
        lake, artifacts, per_month, seconds, per_month * seconds / 3600 / MONTH_HOURS
    )


def _artifact_bytes(ws: Workspace) -> int:
    """Bytes under the artifact store's prefix: a folder walk, or one object-store listing."""
    root = ws.storage.uri(ws.artifacts.prefix)
    filesystem = ws.storage.arrow_filesystem()
    if filesystem is None:
        total = 0
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except OSError:  # removed while walking
                    continue
        return total
    from pyarrow import fs

    selector = fs.FileSelector(root.split("://", 1)[-1], recursive=True, allow_not_found=True)
    infos = filesystem.get_file_info(selector)
    return sum(i.size or 0 for i in infos if i.type == fs.FileType.File)

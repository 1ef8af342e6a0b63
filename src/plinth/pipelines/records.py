"""Catalog records of pipeline runs: run and step rows, the step cache, lineage edges.

Each function is one transaction. Lineage nodes: ``pipeline_run:ID``, ``step_run:ID/STEP``,
``artifact:sha256:DIGEST`` and ``table_version:TABLE@VERSION``; edges: the pipeline run
``has_step`` each step run, a table version is ``read_by`` a step run, an artifact is an
``input_of`` a step run, and a step run ``produced`` its output artifacts.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from plinth._core.urls import redact_text, redact_value
from plinth.catalog import audit
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import (
    LakeTable,
    PipelineRun,
    StepRun,
    TableVersion,
)
from plinth.errors import TableNotFoundError
from plinth.pipelines import cache

if TYPE_CHECKING:
    from plinth.catalog import Catalog
    from plinth.pipelines.dag import Dag

__all__ = [
    "artifact_node",
    "create_run",
    "finish_run",
    "step_node",
    "table_versions",
    "update_step",
]


def step_node(run_id: str, step: str) -> Node:
    """The lineage node of one step of a run.

    Example:
        >>> str(step_node("pr_1", "train"))
        'step_run:pr_1/train'
    """
    return Node("step_run", f"{run_id}/{step}")


def artifact_node(digest: str) -> Node:
    """The lineage node of an artifact.

    Example:
        >>> artifact_node("ab" * 32).kind
        'artifact'
    """
    return Node("artifact", f"sha256:{digest}")


def create_run(
    catalog: Catalog,
    *,
    run_id: str,
    dag: Dag,
    reference: str,
    executor: str,
    user: str,
    started_at: datetime,
) -> None:
    """Record a new running pipeline run and a pending row per step.

    Example:
        >>> # create_run(ws.catalog, run_id=rid, dag=dag, reference="m:f", executor="local",
        >>> #            user="ada", started_at=utcnow())
    """
    # Secrets among the parameters (passwords in URLs, tokens) are masked in the records.
    shape = redact_value(dag.to_json())
    with catalog.session() as session:
        session.add(
            PipelineRun(
                id=run_id,
                pipeline=dag.pipeline,
                reference=reference,
                params=shape["params"],
                executor=executor,
                status="running",
                error=None,
                dag=shape,
                started_at=started_at,
                ended_at=None,
                created_by=user,
            )
        )
        session.flush()
        run = Node("pipeline_run", run_id)
        for spec in shape["steps"]:
            session.add(
                StepRun(
                    pipeline_run_id=run_id,
                    step=spec["name"],
                    status="pending",
                    attempts=0,
                    resources=spec["resources"],
                )
            )
            add_edge(session, run, step_node(run_id, spec["name"]), "has_step")
        audit.record(
            session,
            actor=user,
            action="pipeline.start",
            resource=f"pipeline_run:{run_id}",
            details={"pipeline": dag.pipeline, "reference": reference, "executor": executor},
        )


def update_step(catalog: Catalog, run_id: str, step: str, **values: Any) -> None:
    """Update one step row (status, attempts, timings ...) in its own transaction.

    Example:
        >>> # update_step(ws.catalog, run_id, "train", status="running", attempts=1)
    """
    with catalog.session() as session:
        session.execute(
            update(StepRun)
            .where(StepRun.pipeline_run_id == run_id, StepRun.step == step)
            .values(**values)
        )


def finish_step(
    catalog: Catalog,
    run_id: str,
    step: str,
    *,
    values: dict[str, Any],
    inputs: dict[str, str],
    tables: dict[str, int],
    cache_entry: dict[str, Any] | None,
) -> None:
    """Record a step's end: its row, lineage, and (for a fresh success) its cache entry.

    ``inputs`` maps input names to artifact digests, ``tables`` table names to versions.

    Example:
        >>> # finish_step(ws.catalog, run_id, "train", values={"status": "succeeded"},
        >>> #             inputs={}, tables={"flights": 3}, cache_entry=None)
    """
    with catalog.session() as session:
        session.execute(
            update(StepRun)
            .where(StepRun.pipeline_run_id == run_id, StepRun.step == step)
            .values(**values)
        )
        node = step_node(run_id, step)
        for name, version in tables.items():
            add_edge(session, Node("table_version", f"{name}@{version}"), node, "read_by")
        for name, digest in inputs.items():
            add_edge(session, artifact_node(digest), node, "input_of", {"input": name})
        for name, digest in (values.get("outputs") or {}).items():
            add_edge(session, node, artifact_node(digest), "produced", {"output": name})
    if cache_entry is not None:
        cache.store(catalog, cache_entry)


def table_versions(catalog: Catalog, names: list[str]) -> dict[str, int]:
    """The latest recorded version of each named lake table (TableNotFoundError if none).

    Example:
        >>> # table_versions(ws.catalog, ["flights"])  # {"flights": 3}
    """
    if not names:
        return {}
    with catalog.session() as session:
        rows = session.execute(
            select(LakeTable.name, func.max(TableVersion.version))
            .join(TableVersion, TableVersion.table_id == LakeTable.id)
            .where(LakeTable.name.in_(names))
            .group_by(LakeTable.name)
        ).all()
    latest = {name: int(version) for name, version in rows if version is not None}
    missing = [n for n in names if n not in latest]
    if missing:
        raise TableNotFoundError(
            f"Table '{missing[0]}' does not exist (or has no version yet).",
            hint="Ingest it first ('plinth ingest'), or fix the table name the step reads.",
        )
    return {n: latest[n] for n in names}


def finish_run(
    catalog: Catalog, run_id: str, status: str, error: str | None, ended_at: datetime
) -> None:
    """Record the end of a pipeline run.

    Example:
        >>> # finish_run(ws.catalog, run_id, "succeeded", None, utcnow())
    """
    with catalog.session() as session:
        session.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id)
            .values(status=status, error=error, ended_at=ended_at)
        )
        found = session.execute(
            select(PipelineRun.pipeline, PipelineRun.created_by).where(PipelineRun.id == run_id)
        ).first()
        if found is not None:
            audit.record(
                session,
                actor=found.created_by,
                action="pipeline.end",
                resource=f"pipeline_run:{run_id}",
                details={
                    "pipeline": found.pipeline,
                    "status": status,
                    "error": redact_text(error)[:500] if error else None,
                },
            )


def skip_steps(catalog: Catalog, run_id: str, steps: list[str], reason: str) -> None:
    """Mark steps that will not run as skipped, with the reason.

    Example:
        >>> # skip_steps(ws.catalog, run_id, ["report"], "Upstream step 'fit' failed.")
    """
    if not steps:
        return
    with catalog.session() as session:
        session.execute(
            update(StepRun)
            .where(StepRun.pipeline_run_id == run_id, StepRun.step.in_(steps))
            .values(status="skipped", error=reason)
        )

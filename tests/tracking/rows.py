"""Catalog rows for read-side tracking tests, written straight through the ORM models."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from plinth.catalog.models import MetricChunk, Run, RunMetric, RunParam, RunTag
from plinth.tracking.points import pack

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def add_run(
    session: Session,
    run_id: str,
    *,
    experiment: str = "exp",
    status: str = "finished",
    minutes: int = 0,
    duration: float | None = 60.0,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    parent_id: str | None = None,
    launcher: str = "local",
    **fields: Any,
) -> None:
    """Insert a run started ``minutes`` after T0, with params, last metric values and tags.

    A parameter's ``number`` is filled the way the logging side does: for numbers and for
    strings that parse as one.
    """
    started = T0 + timedelta(minutes=minutes)
    session.add(
        Run(
            id=run_id,
            experiment=experiment,
            status=status,
            parent_id=parent_id,
            launcher=launcher,
            started_at=started,
            ended_at=None if duration is None else started + timedelta(seconds=duration),
            created_by="tester",
            **fields,
        )
    )
    for key, value in (params or {}).items():
        if isinstance(value, int | float):
            text, number = repr(value), float(value)
        else:
            text = str(value)
            try:
                number = float(text)
            except ValueError:
                number = None
        session.add(RunParam(run_id=run_id, key=key, value=text, number=number))
    for key, last in (metrics or {}).items():
        value = None if math.isnan(last) else last
        session.add(
            RunMetric(
                run_id=run_id,
                key=key,
                last=value,
                last_step=0,
                min=value,
                max=value,
                count=1,
                updated_at=started,
            )
        )
    for key, value in (tags or {}).items():
        session.add(RunTag(run_id=run_id, key=key, value=value))
    session.flush()


def add_series(
    session: Session,
    run_id: str,
    key: str,
    steps: Sequence[int],
    values: Sequence[float],
    *,
    chunk: int = 1000,
) -> int:
    """Insert a metric series for an existing run: its summary and packed chunks of points.

    Points go in logging order, ``chunk`` per chunk row, as the writer would store them.
    """
    finite = [v for v in values if not math.isnan(v)]
    last_index = max(range(len(steps)), key=lambda i: (steps[i], i))
    last = values[last_index]
    metric = RunMetric(
        run_id=run_id,
        key=key,
        last=None if math.isnan(last) else last,
        last_step=steps[last_index],
        min=min(finite) if finite else None,
        max=max(finite) if finite else None,
        count=len(values),
        updated_at=T0,
    )
    session.add(metric)
    session.flush()
    base_us = int(T0.timestamp() * 1_000_000)
    rows = []
    for start in range(0, len(steps), chunk):
        part = list(steps[start : start + chunk])
        rows.append(
            {
                "metric_id": metric.id,
                **pack(
                    part,
                    list(values[start : start + chunk]),
                    [base_us + s * 1000 for s in part],
                ),
            }
        )
    session.execute(MetricChunk.__table__.insert(), rows)
    return metric.id

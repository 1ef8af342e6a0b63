"""Drift of a served model's traffic: its prediction log, window by window, against a reference.

The reference defaults to the model version's recorded training set (its model inputs),
optionally narrowed with a SQL predicate (``reference_where``, e.g. the months the model was
trained on), or any lake table version. The current data is the model's prediction log
(``predictions__<model>``), cut into windows by event time (``1h``, ``1d``, ``30d`` ...) or
into runs of N rows. Each window is counted over the reference's bins once, so the report over
many windows costs one pass over the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import ConfigError
from plinth.monitoring.drift import (
    DriftReport,
    Reference,
    Thresholds,
    drift_report,
    fit_references,
    window_counts,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

_UNITS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WindowDrift:
    """One window of the prediction log: its bounds, row count and drift report."""

    start: datetime | None
    end: datetime | None
    rows: int
    report: DriftReport

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "rows": self.rows,
            **self.report.to_dict(),
        }


def parse_window(text: str) -> tuple[str, float]:
    """``("time", seconds)`` for ``30m``/``1h``/``7d``, ``("rows", n)`` for ``10000rows``.

    Example:
        >>> parse_window("1d"), parse_window("5000rows")
        (('time', 86400.0), ('rows', 5000.0))
    """
    value = text.strip().lower()
    try:
        if value.endswith("rows"):
            rows = int(value[:-4])
            if rows > 0:
                return "rows", float(rows)
        elif value and value[-1] in _UNITS:
            amount = float(value[:-1])
            if amount > 0:
                return "time", amount * _UNITS[value[-1]]
    except ValueError:
        pass
    raise ConfigError(
        f"'{text}' is not a window.",
        hint="Use a duration such as 30m, 1h, 1d or 30d, or a row count such as 10000rows.",
    )


def reference_table(
    ws: Workspace, uri: str, *, reference: str | None = None, where: str | None = None
) -> tuple[pa.Table, list[str]]:
    """The reference rows for a model version's inputs, and those input names.

    Example:
        >>> # table, columns = reference_table(ws, "delay@champion", where="month < 6")
    """
    import duckdb

    info = ws.models.get(uri)
    specs = info.signature.inputs if info.signature is not None else None
    if specs is None or not isinstance(specs, tuple | list):
        raise ConfigError(
            f"Model {info.name}:{info.version} has no column signature to monitor.",
            hint="Register it with an input example or a training set.",
        )
    columns = [c.name for c in specs]
    if reference:
        name, _, version = reference.partition("@")
        table = ws.lake.read(name, int(version) if version else None)
    elif info.training_set_id:
        table = ws.features.training_set(info.training_set_id).table
    else:
        raise ConfigError(
            f"Model {info.name}:{info.version} has no recorded training set to compare with.",
            hint="Name a reference: --reference TABLE[@VERSION].",
        )
    if where:
        con = duckdb.connect()
        con.register("reference", table)
        try:
            table = con.sql(f"SELECT * FROM reference WHERE {where}").to_arrow_table()
        except duckdb.Error as exc:
            raise ConfigError(
                f"The reference filter '{where}' does not run: {exc}",
                hint="Give a SQL predicate over the reference's columns.",
            ) from exc
        finally:
            con.close()
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"The reference lacks the model input(s) {', '.join(missing)}.",
            hint="Pick a reference table that holds the model's inputs.",
        )
    if table.num_rows == 0:
        raise ConfigError("The reference has no rows.", hint="Loosen the reference filter.")
    return table.select(columns), columns


def log_drift(
    ws: Workspace,
    uri: str,
    *,
    window: str = "1d",
    reference: str | None = None,
    reference_where: str | None = None,
    thresholds: Thresholds | None = None,
) -> list[WindowDrift]:
    """Drift of each window of a model's prediction log against its reference.

    Windows of whole hours come from the stored history (updated first, reading only the log
    files added since the last update); row windows and shorter ones scan the log.

    Example:
        >>> # [w.report.flagged() for w in log_drift(ws, "delay@champion", window="30d")]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    kind, size = parse_window(window)
    if kind == "time" and size % 3600 == 0:
        from plinth.monitoring.history import stored_windows, update_history
        from plinth.monitoring.profile import ensure_profile

        profile = ensure_profile(ws, uri, reference=reference, where=reference_where)
        update_history(ws, profile)
        return [
            WindowDrift(w.start, w.end, w.rows, w.drift(profile, thresholds))
            for w in stored_windows(ws, profile, window)
        ]

    ref_rows, columns = reference_table(ws, uri, reference=reference, where=reference_where)
    references: dict[str, Reference] = fit_references(ref_rows, columns)
    name = ws.models.get(uri).name
    log = read_log(ws, name)
    present = [c for c in columns if c in log.column_names]
    if not present:
        raise ConfigError(f"The prediction log of '{name}' holds none of the model's inputs.")
    references = {c: references[c] for c in present}
    route = pc.cast(log["route"], pa.string())
    log = log.filter(pc.fill_null(pc.not_equal(route, "shadow"), True)).sort_by("event_time")
    out = []
    for start, end, part in split_windows(log, kind, size):
        report = drift_report(references, window_counts(references, part), thresholds)
        out.append(WindowDrift(start, end, part.num_rows, report))
    return out


def no_log(model: str) -> ConfigError:
    """The error for a model that has not logged any prediction yet.

    Example:
        >>> no_log("delay").message
        "Model 'delay' has no prediction log yet."
    """
    return ConfigError(
        f"Model '{model}' has no prediction log yet.",
        hint="Serve it with 'plinth serve' (prediction logging is on by default).",
    )


def read_log(ws: Workspace, model: str) -> pa.Table:
    """A model's whole prediction log, or :func:`no_log` if it has none.

    Example:
        >>> # read_log(ws, "delay").num_rows
    """
    from plinth.errors import NotFoundError
    from plinth.serving.prediction_log import log_table

    try:
        return ws.lake.read(log_table(model))
    except NotFoundError as exc:
        raise no_log(model) from exc


def split_windows(log: pa.Table, kind: str, size: float) -> list[tuple[Any, Any, pa.Table]]:
    """Cut a log sorted by ``event_time`` into windows: ``(start, end, rows)`` for each.

    ``kind``/``size`` come from :func:`parse_window`; row windows have no bounds.

    Example:
        >>> # for start, end, part in split_windows(log, *parse_window("1d")): ...
    """
    if log.num_rows == 0:
        return []
    if kind == "rows":
        step = int(size)
        return [(None, None, log.slice(i, step)) for i in range(0, log.num_rows, step)]
    times = log["event_time"].to_numpy(zero_copy_only=False).astype("datetime64[us]")
    seconds = times.astype(np.int64) / 1e6
    bucket = np.floor(seconds / size).astype(np.int64)
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    out = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, log.num_rows], strict=True):
        begin = datetime.fromtimestamp(bucket[lo] * size, tz=UTC)
        out.append((begin, begin + timedelta(seconds=size), log.slice(lo, hi - lo)))
    return out


def serving_stats(ws: Workspace, model: str) -> dict[str, Any]:
    """Requests, rows, latency percentiles (ms), throughput (requests/s), error rate and the
    first and last answer time of a model's live traffic (shadow rows left out).

    Example:
        >>> # serving_stats(ws, "delay")["latency_ms"]["p95"]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    empty: dict[str, Any] = {
        "requests": 0, "rows": 0, "latency_ms": {"p50": None, "p95": None, "p99": None},
        "throughput_rps": None, "error_rate": None, "first": None, "last": None,
    }  # fmt: skip
    try:
        log = read_log(ws, model)
    except ConfigError:
        return empty
    if "route" in log.column_names:
        route = pc.cast(log["route"], pa.string())
        log = log.filter(pc.fill_null(pc.not_equal(route, "shadow"), True))
    if log.num_rows == 0:
        return empty
    rows = log.num_rows
    errors = log["prediction"].null_count if "prediction" in log.column_names else 0
    first_rows = log.filter(pc.equal(log["row"], 0)) if "row" in log.column_names else log
    latency = first_rows["latency_ms"]
    quantiles = pc.quantile(latency, q=[0.5, 0.95, 0.99]).to_pylist()
    times = first_rows["answered_at"]
    first, last = pc.min(times).as_py(), pc.max(times).as_py()
    requests = first_rows.num_rows
    span = (last - first).total_seconds() if first and last else 0.0
    return {
        "requests": requests,
        "rows": rows,
        "latency_ms": dict(zip(("p50", "p95", "p99"), quantiles, strict=True)),
        "throughput_rps": requests / span if span > 0 else None,
        "error_rate": errors / rows,
        "first": first,
        "last": last,
    }


def deployment_stats(ws: Workspace, name: str) -> dict[str, Any]:
    """A deployment's serving figures (:func:`serving_stats` of its model), with its name.

    Raises ``DeploymentNotFoundError`` for an unknown deployment.

    Example:
        >>> # deployment_stats(ws, "delay")["requests"]
    """
    info = ws.deployments.get(name)
    return {"deployment": name, "model": info.model, **serving_stats(ws, info.model)}

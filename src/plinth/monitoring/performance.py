"""Live performance of a served model: its prediction log scored against outcomes that arrive later.

Labels (outcomes) land in any lake table some time after the model answered. They are joined to
the model's prediction log (``predictions__<model>``, shadow traffic left out) either by request
id (or any shared key columns; a re-sent label corrects the earlier one) or by entity keys and
time, each outcome going to the latest prediction for its keys made at or before it (an ASOF
join, optionally within a tolerance). The joined rows are cut into the same windows as drift
(``1h``, ``1d``, ``10000rows`` ...) and scored per window: AUC, accuracy, log loss, Brier score
and positive rates for binary classifiers, MAE, RMSE and bias for regressors, overall and per
value of slice columns (a region, a route, the model version). Everything is vectorized, so a
million labelled rows score in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import ConfigError
from plinth.monitoring.service import parse_window, read_log, split_windows

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

__all__ = [
    "WindowPerformance",
    "classification_metrics",
    "infer_task",
    "join_outcomes",
    "log_performance",
    "overall_performance",
    "performance_windows",
    "regression_metrics",
]

TASKS = ("classification", "regression")
#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss.
EPS = 1e-15
#: The most distinct values a slice column may have (more is not a category).
MAX_SLICE_VALUES = 1000
LABEL = "label"


@dataclass(frozen=True)
class WindowPerformance:
    """One window of the prediction log: its bounds, logged and labelled rows, and metrics.

    ``rows`` counts the logged (non-shadow) rows of the window, ``labelled`` those with an
    outcome. ``metrics`` is empty when no row is labelled. ``slices`` maps each slice column to
    its values (as strings; ``"null"`` for a missing value) and their metrics, computed on the
    labelled rows of that value (``"rows"`` counts them).

    Example:
        >>> WindowPerformance(None, None, rows=10, labelled=0, metrics={}).to_dict()["labelled"]
        0
    """

    start: datetime | None
    end: datetime | None
    rows: int
    labelled: int
    metrics: dict[str, float | None]
    slices: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, with the bounds as ISO 8601 strings.

        Example:
            >>> WindowPerformance(None, None, 5, 2, {"mae": 0.5, "rows": 2}).to_dict()["metrics"]
            {'mae': 0.5, 'rows': 2}
        """
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "rows": self.rows,
            "labelled": self.labelled,
            "metrics": dict(self.metrics),
            "slices": {c: {v: dict(m) for v, m in d.items()} for c, d in self.slices.items()},
        }


# --- metrics -------------------------------------------------------------------------------


def _floats(values: Any) -> np.ndarray:
    """A float64 NumPy array of numbers, booleans or an Arrow array (nulls become NaN)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _pairs(y_true: Any, other: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as float arrays, rows where either is missing dropped."""
    y, p = _floats(y_true), _floats(other)
    if y.shape != p.shape:
        raise ConfigError(
            f"There are {y.size} labels but {p.size} predictions.",
            hint="Pass one prediction per label.",
        )
    keep = np.isfinite(y) & np.isfinite(p)
    if not keep.all():
        y, p = y[keep], p[keep]
    return y, p


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic over average ranks (ties count one half)."""
    n = score.size
    n_pos = int(np.count_nonzero(positive))
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score)
    ranked = score[order]
    starts = np.r_[0, np.flatnonzero(ranked[1:] != ranked[:-1]) + 1]
    ends = np.r_[starts[1:], n]
    # Positions start..end-1 hold ranks start+1..end; a run of ties shares their mean.
    mean_rank = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = float(mean_rank[positive[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def classification_metrics(
    y_true: Any, score: Any, threshold: float = 0.5
) -> dict[str, float | None]:
    """Metrics of a binary classifier's scores (probabilities of the positive class).

    ``y_true`` holds 0/1 or booleans; rows where the label or score is missing are left out
    (``rows`` counts the rest). ``auc`` is ``None`` when only one class is present; a score
    at or above ``threshold`` predicts the positive class; probabilities are clipped to
    ``[1e-15, 1 - 1e-15]`` for the log loss. Every metric is ``None`` without rows.

    Example:
        >>> m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
        >>> m["auc"], m["accuracy"], m["rows"]
        (0.75, 0.5, 4)
    """
    y, s = _pairs(y_true, score)
    out: dict[str, float | None] = dict.fromkeys(
        ("auc", "accuracy", "log_loss", "brier", "positive_rate", "predicted_positive_rate")
    )
    out["rows"] = int(y.size)
    if y.size == 0:
        return out
    positive = y == 1
    if not (positive | (y == 0)).all():
        bad = y[~(positive | (y == 0))][0]
        raise ConfigError(
            f"Classification labels must be 0/1 or booleans, but one is {bad:g}.",
            hint="Score a regressor with task='regression', or map the labels to 0/1.",
        )
    predicted = s >= threshold
    p = np.clip(s, EPS, 1.0 - EPS)
    out["auc"] = _auc(positive, s)
    out["accuracy"] = float(np.mean(predicted == positive))
    out["log_loss"] = float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))
    out["brier"] = float(np.mean((s - y) ** 2))
    out["positive_rate"] = float(np.mean(positive))
    out["predicted_positive_rate"] = float(np.mean(predicted))
    return out


def regression_metrics(y_true: Any, prediction: Any) -> dict[str, float | None]:
    """Mean absolute error, root mean squared error and bias (mean prediction minus label).

    Rows where the label or prediction is missing are left out (``rows`` counts the rest);
    every metric is ``None`` without rows.

    Example:
        >>> regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
        {'mae': 1.0, 'rmse': 1.2909944487358056, 'bias': 1.0, 'rows': 3}
    """
    y, p = _pairs(y_true, prediction)
    out: dict[str, float | None] = {"mae": None, "rmse": None, "bias": None, "rows": int(y.size)}
    if y.size:
        error = p - y
        out["mae"] = float(np.mean(np.abs(error)))
        out["rmse"] = float(np.sqrt(np.mean(error**2)))
        out["bias"] = float(np.mean(error))
    return out


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(
            f"'{task}' is not a task Plinth can score.",
            hint="Use task='classification' (0/1 labels, probability predictions) "
            "or task='regression'.",
        )


def _metrics(task: str, y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    if task == "classification":
        return classification_metrics(y, p, threshold)
    return regression_metrics(y, p)


def _numeric_label(column: pa.ChunkedArray | pa.Array, name: str) -> None:
    """Raise a :class:`ConfigError` naming ``name`` unless the column is numeric or boolean."""
    import pyarrow as pa

    kind = column.type
    if not (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    ):
        raise ConfigError(
            f"The label column '{name}' holds {kind} values, not numbers or booleans.",
            hint="Give a 0/1 or boolean label for a classifier, or a number for a regressor.",
        )


def infer_task(label: pa.ChunkedArray) -> str:
    """``"classification"`` for boolean or 0/1 labels, ``"regression"`` for other numbers.

    Missing values are ignored. A label that is neither numeric nor boolean raises
    :class:`~plinth.errors.ConfigError`.

    Example:
        >>> import pyarrow as pa
        >>> infer_task(pa.chunked_array([[0, 1, 1, None]])), infer_task(pa.chunked_array([[2.5]]))
        ('classification', 'regression')
    """
    import pyarrow as pa

    _numeric_label(label, LABEL)
    if pa.types.is_boolean(label.type):
        return "classification"
    values = _floats(label)
    values = values[~np.isnan(values)]
    return "classification" if np.isin(values, (0.0, 1.0)).all() else "regression"


# --- joining outcomes ----------------------------------------------------------------------


def _require(table: pa.Table, columns: Sequence[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"The {what} has no column(s) {', '.join(repr(c) for c in missing)}.",
            hint=f"Its columns are: {', '.join(table.column_names)}.",
        )


def _served(log: pa.Table) -> pa.Table:
    """The rows of a log that answered callers: shadow-route rows are left out."""
    import pyarrow.compute as pc

    if "route" not in log.column_names:
        return log
    return log.filter(pc.fill_null(pc.not_equal(log["route"], "shadow"), True))


def _key(outcomes: pa.Table, log: pa.Table, name: str) -> pa.ChunkedArray:
    """The outcomes' key column cast to the log's type for that key."""
    import pyarrow as pa

    column, kind = outcomes[name], log.schema.field(name).type
    if column.type == kind:
        return column
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(
            f"The key column '{name}' is {kind} in the prediction log but {column.type} in "
            "the outcomes, and the outcomes' values do not convert.",
            hint=f"Store '{name}' in the outcomes with the log's type ({kind}).",
        ) from exc


def _epoch_us(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Microseconds since the epoch of a timestamp or date column (naive times read as UTC)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
    elif pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us", kind.tz), safe=False)
    else:
        raise ConfigError(
            f"The time column '{name}' holds {kind} values, not timestamps.",
            hint="Name a timestamp or date column of the outcomes as the time column.",
        )
    return column.cast(pa.int64())


def join_outcomes(
    log: pa.Table,
    outcomes: pa.Table,
    *,
    label: str,
    on: Sequence[str] = ("request_id",),
    time_column: str | None = None,
    tolerance: timedelta | None = None,
) -> pa.Table:
    """The prediction log's rows that have an outcome, with the outcome as a ``label`` column.

    ``on`` names the key columns, spelled the same in both tables (the outcomes' keys are
    cast to the log's types). Without ``time_column`` it is an equi-join: when a key repeats
    in the outcomes, the last occurrence wins (a label is corrected by sending it again).
    With ``time_column`` (a timestamp or date column of the outcomes; naive times are UTC),
    each outcome goes to the log row with the same keys and the latest ``event_time`` at or
    before the outcome's time, no more than ``tolerance`` before it when given; a log row
    claimed by several outcomes keeps the latest (then the last) of them. Outcomes with a
    missing key or label, and outcomes matching no row, are ignored; shadow-route rows are
    left out. The result keeps every log column (a log column named ``label`` is replaced in place)
    and is sorted by ``event_time``.

    Example:
        >>> import pyarrow as pa
        >>> from datetime import datetime, UTC
        >>> at = datetime(2024, 1, 1, tzinfo=UTC)
        >>> log = pa.table({"request_id": ["a", "b"], "event_time": [at, at],
        ...                 "prediction": [0.9, 0.2]})
        >>> outcomes = pa.table({"request_id": ["b", "zz", "b"], "y": [1, 0, 0]})
        >>> join_outcomes(log, outcomes, label="y").select(["request_id", "label"]).to_pylist()
        [{'request_id': 'b', 'label': 0}]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = list(on)
    if not keys:
        raise ConfigError(
            "Outcomes cannot be joined without key columns.",
            hint="Name the key columns: on=('request_id',) or the entity keys with a time column.",
        )
    if label in keys or label == time_column:
        raise ConfigError(
            f"The label column '{label}' is also a key or the time column.",
            hint="Name the outcome's value as the label, and its keys and time separately.",
        )
    _require(outcomes, [label, *keys, *([time_column] if time_column else [])], "outcomes")
    _require(log, [*keys, "event_time"], "prediction log")
    if tolerance is not None and time_column is None:
        raise ConfigError(
            "A tolerance only applies to a join by time.",
            hint="Name the outcomes' time column too, or leave the tolerance out.",
        )
    _numeric_label(outcomes[label], label)
    log = _served(log)
    names = [f"_k{i}" for i in range(len(keys))]
    columns: dict[str, Any] = {n: _key(outcomes, log, k) for n, k in zip(names, keys, strict=True)}
    columns["_y"] = outcomes[label]
    if time_column:
        columns["_t"] = _epoch_us(outcomes[time_column], time_column)
    frame = pa.table(columns)
    keep = pc.is_valid(frame["_y"])
    if pa.types.is_floating(frame["_y"].type):
        keep = pc.and_(keep, pc.invert(pc.is_nan(frame["_y"])))
    for n in [*names, *(["_t"] if time_column else [])]:
        keep = pc.and_(keep, pc.is_valid(frame[n]))
    frame = frame.filter(keep)
    frame = frame.append_column("_o", pa.array(np.arange(frame.num_rows, dtype=np.int64)))
    rows = {n: log[k] for n, k in zip(names, keys, strict=True)}
    rows["_i"] = pa.array(np.arange(log.num_rows, dtype=np.int64))
    if time_column:
        rows["_e"] = _epoch_us(log["event_time"], "event_time")
        index, outcome = _asof(pa.table(rows), frame, names, tolerance)
    else:
        last = frame.group_by(names, use_threads=False).aggregate([("_o", "max")])
        last = frame.take(last["_o_max"]).select([*names, "_o"])
        matched = pa.table(rows).join(last, keys=names, join_type="inner", use_threads=False)
        index = matched["_i"].to_numpy()
        outcome = matched["_o"].to_numpy()
        order = np.argsort(index)
        index, outcome = index[order], outcome[order]
    out = log.take(pa.array(index, pa.int64()))
    labels = frame["_y"].take(pa.array(outcome, pa.int64()))
    if LABEL in out.column_names:
        out = out.set_column(out.column_names.index(LABEL), LABEL, labels)
    else:
        out = out.append_column(LABEL, labels)
    return out.sort_by("event_time")


def _asof(
    rows: pa.Table, frame: pa.Table, names: list[str], tolerance: timedelta | None
) -> tuple[np.ndarray, np.ndarray]:
    """Log row and outcome positions of an ASOF join, one outcome per log row, by log row."""
    import duckdb

    on = " AND ".join(f"o.{n} = l.{n}" for n in names)
    con = duckdb.connect()
    try:
        con.register("o", frame.select([*names, "_t", "_o"]))
        con.register("l", rows)
        matched = con.sql(
            f"SELECT l._i AS i, o._o AS o, o._t AS t, o._t - l._e AS lag "
            f"FROM o ASOF JOIN l ON {on} AND o._t >= l._e"
        ).to_arrow_table()
    finally:
        con.close()
    index, outcome = matched["i"].to_numpy(), matched["o"].to_numpy()
    time, lag = matched["t"].to_numpy(), matched["lag"].to_numpy()
    if tolerance is not None:
        near = lag <= tolerance // timedelta(microseconds=1)
        index, outcome, time = index[near], outcome[near], time[near]
    # Several outcomes may land on one log row: keep the latest, then the last sent.
    order = np.lexsort((outcome, time, index))
    index, outcome = index[order], outcome[order]
    last = np.r_[index[1:] != index[:-1], True] if index.size else np.zeros(0, bool)
    return index[last], outcome[last]


# --- windows -------------------------------------------------------------------------------


def _buckets(table: pa.Table, size: float) -> np.ndarray:
    """Each row's time bucket, computed exactly as :func:`split_windows` does."""
    times = table["event_time"].to_numpy(zero_copy_only=False).astype("datetime64[us]")
    return np.floor(times.astype(np.int64) / 1e6 / size).astype(np.int64)


def _assign(
    log: pa.Table,
    joined: pa.Table,
    windows: list[tuple[Any, Any, pa.Table]],
    kind: str,
    size: float,
) -> np.ndarray:
    """The window index of each joined row (-1 for rows in no window of the log)."""
    import pyarrow as pa

    out = np.full(joined.num_rows, -1, dtype=np.int64)
    if not windows or joined.num_rows == 0:
        return out
    if kind == "time":
        starts = np.array([_buckets(part.slice(0, 1), size)[0] for _, _, part in windows])
        buckets = _buckets(joined, size)
        at = np.minimum(np.searchsorted(starts, buckets), starts.size - 1)
        return np.where(starts[at] == buckets, at, -1)
    ids = [c for c in ("request_id", "row") if c in log.column_names and c in joined.column_names]
    if not ids:
        raise ConfigError(
            "Row windows need a 'request_id' column in the prediction log.",
            hint="Use a time window such as 1h or 1d.",
        )
    logged = log.select(ids).append_column(
        "_w", pa.array(np.arange(log.num_rows, dtype=np.int64) // int(size))
    )
    labelled = joined.select(ids).append_column(
        "_j", pa.array(np.arange(joined.num_rows, dtype=np.int64))
    )
    matched = labelled.join(logged, keys=ids, join_type="inner", use_threads=False)
    out[matched["_j"].to_numpy()] = matched["_w"].to_numpy()
    return out


def _slice_codes(column: pa.ChunkedArray, name: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a slice column's values and the values as strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
    values = encoded.dictionary.to_pylist()
    if len(values) > MAX_SLICE_VALUES:
        raise ConfigError(
            f"The slice column '{name}' has {len(values)} distinct values.",
            hint=f"Slice by a categorical column (at most {MAX_SLICE_VALUES} values).",
        )
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, ["null" if v is None else str(v) for v in values]


def _labels(joined: pa.Table, task: str) -> tuple[np.ndarray, np.ndarray]:
    _check_task(task)
    _require(joined, [LABEL, "prediction"], "joined table")
    _numeric_label(joined[LABEL], LABEL)
    return _floats(joined[LABEL]), _floats(joined["prediction"])


def overall_performance(
    joined: pa.Table, *, task: str, threshold: float = 0.5
) -> dict[str, float | None]:
    """The metrics over every labelled row, as :func:`join_outcomes` returns them.

    Shadow-route rows, if any, are left out.

    Example:
        >>> import pyarrow as pa
        >>> joined = pa.table({"prediction": [0.2, 0.8], "label": [0, 1]})
        >>> overall_performance(joined, task="classification")["accuracy"]
        1.0
    """
    y, p = _labels(_served(joined), task)
    return _metrics(task, y, p, threshold)


def performance_windows(
    log: pa.Table,
    joined: pa.Table,
    *,
    window: str = "1d",
    task: str = "classification",
    slice_by: Sequence[str] = (),
    threshold: float = 0.5,
) -> list[WindowPerformance]:
    """Metrics for each window of a prediction log, from its rows joined with outcomes.

    The (non-shadow) log is cut by ``event_time`` into windows as drift cuts it
    (:func:`~plinth.monitoring.service.split_windows`); ``rows`` counts the log's rows of a
    window and the metrics come from the joined rows in the same window. Time windows align
    joined rows to the same window starts. Row windows (``10000rows``) cut the log sorted by
    event time into runs of N rows, and joined rows fall in the run holding their
    ``request_id`` (and ``row``, when both tables have it). Slices give per-value metrics on
    the labelled rows of each ``slice_by`` column.

    Example:
        >>> # log = ws.lake.read("predictions__risk")
        >>> # joined = join_outcomes(log, ws.lake.read("defaults"), label="defaulted")
        >>> # [w.metrics["auc"] for w in performance_windows(log, joined, window="7d")]
    """
    kind, size = parse_window(window)
    y, p = _labels(joined, task)
    _require(log, ["event_time"], "prediction log")
    _require(joined, ["event_time", *slice_by], "joined table")
    if "route" in joined.column_names:
        served = _served(joined)
        if served.num_rows != joined.num_rows:
            y, p = _labels(served, task)
            joined = served
    log = _served(log).sort_by("event_time")
    windows = split_windows(log, kind, size)
    assign = _assign(log, joined, windows, kind, size)
    order = np.argsort(assign, kind="stable")
    edges = np.searchsorted(assign[order], np.arange(len(windows) + 1))
    codes = {c: _slice_codes(joined[c], c) for c in dict.fromkeys(slice_by)}
    out = []
    for i, (start, end, part) in enumerate(windows):
        rows = order[edges[i] : edges[i + 1]]
        metrics: dict[str, float | None] = {}
        slices: dict[str, dict[str, dict[str, float | None]]] = {}
        if rows.size:
            metrics = _metrics(task, y[rows], p[rows], threshold)
            for column, (code, values) in codes.items():
                slices[column] = _by_value(task, code[rows], values, y[rows], p[rows], threshold)
        out.append(WindowPerformance(start, end, part.num_rows, int(rows.size), metrics, slices))
    return out


def _by_value(
    task: str, code: np.ndarray, values: list[str], y: np.ndarray, p: np.ndarray, threshold: float
) -> dict[str, dict[str, float | None]]:
    """Metrics for each slice value present, in the order the values first appear."""
    order = np.argsort(code, kind="stable")
    present, first = np.unique(code[order], return_index=True)
    bounds = np.r_[first, code.size]
    out = {}
    for j, value in enumerate(present):
        rows = order[bounds[j] : bounds[j + 1]]
        out[values[value]] = _metrics(task, y[rows], p[rows], threshold)
    return out


def log_performance(
    ws: Workspace,
    uri: str,
    outcomes: str,
    *,
    label: str,
    on: Sequence[str] = ("request_id",),
    time_column: str | None = None,
    tolerance: timedelta | None = None,
    window: str = "1d",
    slice_by: Sequence[str] = (),
    task: str | None = None,
    threshold: float = 0.5,
) -> list[WindowPerformance]:
    """Performance of each window of a model's prediction log against an outcomes table.

    ``outcomes`` is a lake table, ``TABLE`` or ``TABLE@VERSION``. The log holds every version
    the model served; slice by ``model_version`` to tell them apart. ``task`` is inferred
    from the label when not given (0/1 or boolean: classification; other numbers: regression).
    See :func:`join_outcomes` for ``on``/``time_column``/``tolerance`` and
    :func:`performance_windows` for ``window``/``slice_by``.

    Example:
        >>> # windows = log_performance(ws, "risk@champion", "defaults", label="defaulted")
        >>> # [(w.start, w.labelled, w.metrics.get("auc")) for w in windows]
    """
    from plinth.errors import NotFoundError

    parse_window(window)
    if task is not None:
        _check_task(task)
    name = ws.models.get(uri).name
    log = read_log(ws, name)
    table, _, version = outcomes.partition("@")
    if version and not version.isdigit():
        raise ConfigError(
            f"'{outcomes}' does not name a table version.",
            hint="Name the outcomes as TABLE or TABLE@VERSION, e.g. defaults@3.",
        )
    try:
        frame = ws.lake.read(table, int(version) if version else None)
    except NotFoundError as exc:
        raise ConfigError(
            f"The outcomes table '{outcomes}' does not exist: {exc.message}",
            hint="Ingest the outcomes into the lake first; 'plinth tables' lists the tables.",
        ) from exc
    _require(frame, [label], f"outcomes table '{outcomes}'")
    _numeric_label(frame[label], label)
    missing = [c for c in slice_by if c not in log.column_names]
    if missing:
        raise ConfigError(
            f"The prediction log of '{name}' has no slice column(s) "
            f"{', '.join(repr(c) for c in missing)}.",
            hint=f"Slice by logged columns: {', '.join(log.column_names)}.",
        )
    task = task or infer_task(frame[label])
    log = _served(log)
    joined = join_outcomes(
        log, frame, label=label, on=on, time_column=time_column, tolerance=tolerance
    )
    return performance_windows(
        log, joined, window=window, task=task, slice_by=slice_by, threshold=threshold
    )

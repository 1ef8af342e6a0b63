"""Batch inference: score a lake table with one registered model version, chunk by chunk.

The model URI is resolved to one version and the input table pinned to one version before
anything is read, so a moved alias or a new input version cannot mix into one output. The
input is read as Arrow record batches, ``chunk_rows`` rows at a time; only the model's input
columns of one chunk ever become pandas. A version registered with a feature service makes
the table a *spine*: its rows are joined point-in-time to the service's features
(:func:`plinth.features.historical.historical`), missing values reaching the model as NaN.
A join scans the feature sources whatever the spine's size, so it takes whole chunks up to
:data:`JOIN_ROWS` rows at a time (as Arrow, in DuckDB).

The output holds ``input_row`` (the row's position in the input version as ``ws.lake.read``
returns it), the input columns the model does not take, ``prediction`` (``prediction_0`` ...
for several outputs), ``probability`` for classifiers (``probability_0`` ... beyond two
classes) and ``model_version`` (``name:version``); one row per input row. Delta keeps no row
order (its writer reorders batches), so ``ORDER BY input_row`` reads it in the input's order.
The chunks stream into **one** Delta commit: the output appears as one new version, or not
at all. Its lineage names the input version, the model version and the features read.

``executor="ray"`` scores on a Ray cluster with Ray Data: the driver reads and joins the
chunks into the object store, the loaded model goes once (``ray.put``) to a pool of actors,
and the driver writes their results. Workers need Plinth and the model's library installed.

Example:
    >>> # predict_table(ws, "delay@champion", "flights", output="flights_scored").rows
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from plinth.errors import ConfigError, PlinthError, SchemaMismatchError

if TYPE_CHECKING:
    from plinth.features.definitions import FeatureService
    from plinth.lake.records import VersionInfo
    from plinth.registry.records import LoadedModel, ModelVersionInfo
    from plinth.workspace import Workspace

EXECUTORS = ("local", "ray")
MODES = ("overwrite", "append")
ROW = "input_row"
PREDICTION = "prediction"
PROBABILITY = "probability"
MODEL_VERSION = "model_version"
RESERVED = (ROW, PREDICTION, PROBABILITY, MODEL_VERSION)
#: Spine rows joined to the features at once (in whole chunks): one join scans the sources.
JOIN_ROWS = 1_000_000
#: Where the Ray cluster is when no address is given (then ``RAY_ADDRESS``, then ``auto``).
RAY_ADDRESS_ENV = "PLINTH_RAY_ADDRESS"
_ERROR = "__plinth_error__"

Progress = bool | Callable[[int, int], None] | None


@dataclass(frozen=True)
class BatchResult:
    """What one batch-inference job read, used and wrote.

    Example:
        >>> r = BatchResult("delay", 3, "flights", 0, "scored", 1, 1000, 1, 2.0, "local")
        >>> r.rows_per_second, r.to_dict()["model_uri"]
        (500.0, 'models:/delay/3')
    """

    model: str
    model_version: int
    input_table: str
    input_version: int
    output_table: str
    output_version: int
    rows: int
    chunks: int
    seconds: float
    executor: str
    feature_service: str | None = None
    timestamp: str | None = None
    feature_tables: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Rows per second of the whole job (reading, joining, scoring and writing)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_uri(self) -> str:
        """The exact model version used, ``models:/name/version``."""
        return f"models:/{self.model}/{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with the derived figures and references."""
        return {
            **asdict(self),
            "model_uri": self.model_uri,
            "input": f"{self.input_table}@{self.input_version}",
            "output": f"{self.output_table}@{self.output_version}",
            "rows_per_second": round(self.rows_per_second, 1),
        }


@dataclass(frozen=True)
class ScoringPlan:
    """What turns a chunk (input columns, joined features, ``input_row``) into output columns.

    Plain data, so it travels to Ray workers with the model.

    Example:
        >>> ScoringPlan("delay:3", inputs=("hour", "weather__temp"), keep=("id",),
        ...             probability=False).label
        'delay:3'
    """

    label: str
    inputs: tuple[str, ...]
    keep: tuple[str, ...]
    probability: bool
    integer_inputs: tuple[str, ...] = ()


# -- scoring one chunk ---------------------------------------------------------------------


def score_chunk(model: LoadedModel, chunk: pa.Table, plan: ScoringPlan) -> pa.Table:
    """Score one chunk into output columns; only the model's inputs go through pandas.

    Example:
        >>> # score_chunk(ws.models.load("delay:3"), chunk, plan).column("prediction")
    """
    import numpy as np

    n = chunk.num_rows
    frame = chunk.select(list(plan.inputs)).to_pandas()
    try:
        data = _model_input(model, frame, plan)
        predicted = model.predict(data, validate=False)
        proba = model.predict_proba(data, validate=False) if plan.probability else None
    except PlinthError:
        raise
    except Exception as exc:
        raise SchemaMismatchError(
            f"Model {plan.label} could not predict on a chunk of {n} rows: "
            f"{type(exc).__name__}: {exc}",
            hint="Check the rows for values the model cannot take (scikit-learn estimators "
            "refuse NaN: fill missing features in the feature view, or use a model that takes "
            "them, such as LightGBM).",
        ) from exc
    out = chunk.select([ROW, *plan.keep])
    columns = _columns(PREDICTION, predicted, n)
    if proba is not None:
        values = np.asarray(proba)
        columns += _columns(PROBABILITY, values[:, 1] if values.shape[1:] == (2,) else values, n)
    for name, column in columns:
        out = out.append_column(name, column)
    return out.append_column(MODEL_VERSION, pa.repeat(pa.scalar(plan.label), n))


def _model_input(model: LoadedModel, frame: Any, plan: ScoringPlan) -> Any:
    """The model's input, checked against the signature; missing integers passed as NaN.

    An integer column with a missing value comes out of Arrow as float; it is checked as a
    nullable integer and handed to the model as float with NaN, as serving would.
    """
    floated = [c for c in plan.integer_inputs if frame[c].dtype.kind == "f"]
    if not floated:
        return model.prepare(frame)
    checked = model.prepare(frame.assign(**{c: frame[c].astype("Int64") for c in floated}))
    return checked.assign(**{c: frame[c] for c in floated})


def _columns(prefix: str, values: Any, n: int) -> list[tuple[str, pa.Array]]:
    """One column for a 1-D result (or one output column), ``prefix_i`` columns otherwise."""
    import numpy as np

    array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if array.ndim == 0 or array.shape[0] != n:
        raise SchemaMismatchError(
            f"The model returned {array.shape[0] if array.ndim else 1} value(s) for {n} rows.",
            hint="Batch inference needs one prediction per input row.",
        )
    array = array.reshape(n, -1) if array.ndim > 1 else array
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        return [(prefix, pa.array(array))]
    return [(f"{prefix}_{i}", pa.array(array[:, i])) for i in range(array.shape[1])]


# -- the job -------------------------------------------------------------------------------


def predict_table(
    ws: Workspace,
    uri: str,
    table: str,
    *,
    version: int | None = None,
    output: str,
    timestamp: str | None = None,
    chunk_rows: int = 100_000,
    executor: str = "local",
    ray_address: str | None = None,
    keep: Sequence[str] | None = None,
    mode: str = "overwrite",
    progress: Progress = None,
) -> BatchResult:
    """Score every row of ``table`` (at ``version``, default latest) into the table ``output``.

    ``keep`` names the input columns copied to the output (default: every column the model
    does not take; none for a model without a column signature, which takes all the others).
    ``mode`` is ``overwrite`` or ``append``. ``timestamp`` is the spine's event-time column
    for a model with a feature service (default: the one recorded with its training set,
    else the table's declared timestamp column, else the only time column the table shares
    with the training set). ``progress=True`` shows a progress bar; a callable is called with
    ``(chunks_read, rows_scored)`` as rows are scored. The output is described in the module
    docstring.

    Example:
        >>> # r = predict_table(ws, "delay@champion", "flights", output="scored")
        >>> # r.output_version, r.rows_per_second
    """
    started = time.perf_counter()
    job = _plan(ws, uri, table, version, output, timestamp, chunk_rows, executor, keep, mode)
    reporter = _Reporter(progress, job.source.row_count)
    pool = None
    try:
        pool = _RayPool(ray_address) if executor == "ray" else None
        chunks = job.joined_chunks(reporter)
        if pool is not None:
            scored = pool.score(job, chunks)
        else:
            scored = (score_chunk(job.model, chunk, job.scoring) for chunk in chunks)
        # Delta pulls the batches from inside its own async runtime, where opening a Delta
        # table (as the feature join does) is not allowed: the chunks come from a thread.
        info = job.write(_on_thread(_counted(scored, reporter)))
    finally:
        reporter.close()
        if pool is not None:
            pool.close()
    job.record_lineage(info, reporter.rows)
    return BatchResult(
        model=job.info.name,
        model_version=job.info.version,
        input_table=table,
        input_version=job.source.version,
        output_table=output,
        output_version=info.version,
        rows=reporter.rows,
        chunks=reporter.chunks,
        seconds=time.perf_counter() - started,
        executor=executor,
        feature_service=job.service.name if job.service else None,
        timestamp=job.timestamp,
        feature_tables={k: sorted(v) for k, v in job.feature_tables.items()},
    )


@dataclass
class _Job:
    """One batch-inference job, checked and pinned before any chunk is read."""

    ws: Workspace
    info: ModelVersionInfo
    model: LoadedModel
    source: VersionInfo
    output: str
    mode: str
    chunk_rows: int
    scoring: ScoringPlan
    service: FeatureService | None
    timestamp: str | None
    features: tuple[str, ...]
    views: dict[str, int] = field(default_factory=dict)
    feature_tables: dict[str, set[int]] = field(default_factory=dict)

    def joined_chunks(self, reporter: _Reporter) -> Iterator[pa.Table]:
        """The input's chunks with ``input_row``, joined to the service's features.

        Each join scans the feature sources once, whatever the spine's size, so features are
        joined to about :data:`JOIN_ROWS` rows (whole chunks) at a time.
        """
        import numpy as np

        dataset = self.ws.lake.scan(self.source.table, self.source.version)
        step = self.chunk_rows
        window = step * max(1, JOIN_ROWS // step) if self.service is not None else step
        offset = 0
        for rows in _rebatch(dataset, window):
            if ROW in rows.column_names:
                rows = rows.drop_columns([ROW])
            if self.service is not None:
                rows = self._join(rows)
            for start in range(0, rows.num_rows, step):
                chunk = rows.slice(start, step)
                n = chunk.num_rows
                chunk = chunk.append_column(ROW, pa.array(np.arange(offset, offset + n)))
                offset += n
                reporter.joined()
                yield chunk

    def _join(self, chunk: pa.Table) -> pa.Table:
        from plinth.features.historical import historical

        assert self.timestamp is not None and self.service is not None
        joined = historical(self.ws, chunk, self.service, timestamp=self.timestamp, record=False)
        for name, version in joined.inputs["tables"].items():
            self.feature_tables.setdefault(name, set()).add(int(version))
        self.views.update(joined.inputs["views"])
        for name in self.features:
            chunk = chunk.append_column(name, joined.table.column(name))
        return chunk

    def write(self, scored: Iterator[pa.Table]) -> VersionInfo:
        """Stream the scored chunks into the output table as one Delta commit."""
        first = next(scored, None)
        if first is None:
            first = self._empty()
        schema = first.schema

        def batches() -> Iterator[pa.RecordBatch]:
            yield from first.to_batches()
            for table in scored:
                yield from table.cast(schema).to_batches()

        reader = pa.RecordBatchReader.from_batches(schema, batches())
        event = self.timestamp if self.timestamp in self.scoring.keep else None
        return self.ws.lake.ingest(reader, table=self.output, mode=self.mode, timestamp=event)

    def _empty(self) -> pa.Table:
        """The output of an empty input: an empty chunk scored, or a float prediction."""
        chunk = self.ws.lake.scan(self.source.table, self.source.version).schema.empty_table()
        for name in (*self.features, ROW):
            chunk = chunk.append_column(name, pa.array([], pa.int64() if name == ROW else None))
        try:
            return score_chunk(self.model, chunk, self.scoring)
        except Exception:
            out = chunk.select([ROW, *self.scoring.keep])
            return out.append_column(PREDICTION, pa.array([], pa.float64())).append_column(
                MODEL_VERSION, pa.array([], pa.string())
            )

    def record_lineage(self, output: VersionInfo, rows: int) -> None:
        """Link the output version to the input version, the model version and the features."""
        from plinth.catalog.lineage import Node, add_edge
        from plinth.registry.records import version_node_id

        target = Node("table_version", output.ref)
        details = {"rows": rows, "model": self.scoring.label}
        source = Node("table_version", self.source.ref)
        model = Node("model_version", version_node_id(self.info.name, self.info.version))
        with self.ws.catalog.session() as session:
            add_edge(session, source, target, "scored_into", details)
            add_edge(session, model, target, "predicted", details)
            for name, versions in self.feature_tables.items():
                for v in versions:
                    add_edge(session, Node("table_version", f"{name}@{v}"), target, "read_by")
            for name, v in self.views.items():
                add_edge(session, Node("feature_view", f"{name}@{v}"), target, "computed")


def _plan(
    ws: Workspace,
    uri: str,
    table: str,
    version: int | None,
    output: str,
    timestamp: str | None,
    chunk_rows: int,
    executor: str,
    keep: Sequence[str] | None,
    mode: str,
) -> _Job:
    """Check the arguments, pin the model and input versions, and decide the columns."""
    from plinth.features.historical import feature_column
    from plinth.features.registry import resolve
    from plinth.lake.lake import check_table_name

    _check_options(table, output, chunk_rows, executor, mode)
    check_table_name(output)
    info = ws.models.get(uri)  # one version for the whole job, whatever aliases do meanwhile
    source = ws.lake.version(table, version)
    schema = ws.lake.scan(table, source.version).schema
    names = schema.names
    service = _service_at(ws, info)
    features: tuple[str, ...] = ()
    if service is not None:
        selections = resolve(ws, service)
        features = tuple(feature_column(s.view.name, f) for s in selections for f in s.features)
        timestamp = _event_time(ws, info, table, schema, timestamp)
    model = ws.models.load(info.uri)
    signature = model.signature.columns if model.signature is not None else None
    unknown = [c for c in keep or () if c not in names]
    if unknown:
        raise SchemaMismatchError(
            f"Table '{source.ref}' has no column '{unknown[0]}' to keep.",
            hint=f"Its columns are: {', '.join(names)}.",
        )
    if signature is None:
        kept = tuple(keep or ())
        inputs = tuple(c for c in (*names, *features) if c not in kept and c != ROW)
    else:
        lacking = [c for c in signature if c not in (*names, *features)]
        if lacking:
            adds = f"; feature service '{service.name}' adds: " if service else ""
            raise SchemaMismatchError(
                f"Table '{source.ref}' lacks column '{lacking[0]}', which model "
                f"{info.name}:{info.version} takes"
                + (f" (and {len(lacking) - 1} more)." if lacking[1:] else "."),
                hint=f"The model takes: {', '.join(signature)}. The table has: "
                f"{', '.join(names)}{adds}{', '.join(features)}.",
            )
        inputs = tuple(signature)
        default = (c for c in names if c not in signature and c != ROW)
        kept = tuple(keep) if keep is not None else tuple(default)
    clash = [c for c in kept if c in RESERVED]
    if clash:
        raise SchemaMismatchError(
            f"Table '{source.ref}' has a column '{clash[0]}', which the output uses for the "
            "model's results.",
            hint="Rename it, or leave it out with keep=[...] (--keep COLUMNS).",
        )
    columns = model.signature.inputs if signature is not None else ()
    integer = tuple(c.name for c in columns if c.type == "integer")  # type: ignore[union-attr]
    proba = hasattr(model.raw, "predict_proba")
    plan = ScoringPlan(f"{info.name}:{info.version}", inputs, kept, proba, integer)
    return _Job(
        ws, info, model, source, output, mode, chunk_rows, plan, service, timestamp, features
    )


def _check_options(table: str, output: str, chunk_rows: int, executor: str, mode: str) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(
            f"Unknown executor '{executor}'.",
            hint="Use 'local' (this process) or 'ray' (a Ray cluster, with --ray-address).",
        )
    if mode not in MODES:
        raise ConfigError(
            f"Batch inference cannot write in mode '{mode}'.",
            hint="Use 'overwrite' (replace the output table's rows) or 'append'.",
        )
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(
            f"chunk_rows must be a positive number of rows, not {chunk_rows!r}.",
            hint="Use e.g. 100000 (--chunk-rows 100000).",
        )
    if output == table:
        raise ConfigError(
            f"The output table '{output}' is the input table.",
            hint="Write the predictions to another table (--output NAME); the input stays the "
            "version the predictions were made from.",
        )


def _service_at(ws: Workspace, info: ModelVersionInfo) -> FeatureService | None:
    """The model's feature service at the version it was registered with, else the newest."""
    if not info.feature_service:
        return None
    from sqlalchemy import select

    from plinth.catalog.models import FeatureDefinition
    from plinth.features.definitions import FeatureService
    from plinth.features.registry import latest_services

    with ws.catalog.session() as session:
        spec = session.scalar(
            select(FeatureDefinition.spec).where(
                FeatureDefinition.kind == "service",
                FeatureDefinition.name == info.feature_service,
                FeatureDefinition.version == (info.feature_service_version or -1),
            )
        )
    if spec is not None:
        return FeatureService.from_spec(spec)
    services = latest_services(ws)
    if info.feature_service not in services:
        raise ConfigError(
            f"Model {info.name}:{info.version} uses feature service '{info.feature_service}', "
            "which is not applied in this workspace.",
            hint="Apply the feature definitions first (plinth features apply).",
        )
    return services[info.feature_service][0]


def _event_time(
    ws: Workspace, info: ModelVersionInfo, table: str, schema: pa.Schema, given: str | None
) -> str:
    """The spine's event-time column: given, recorded with the training set, or inferred."""
    times = [f.name for f in schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    if given is not None:
        if given not in schema.names:
            raise SchemaMismatchError(
                f"Table '{table}' has no column '{given}' to use as the event time.",
                hint=f"Its time columns are: {', '.join(times) or 'none'}.",
            )
        return given
    spine: dict[str, Any] = {}
    if info.training_set_id:
        from plinth.catalog.models import TrainingSet

        with ws.catalog.session() as session:
            record = session.get(TrainingSet, info.training_set_id)
            spine = dict(record.spine) if record is not None else {}
    declared = ws.lake.table(table).timestamp_column
    shared = [c for c in times if c in (spine.get("columns") or [])]
    for candidate in (spine.get("timestamp"), declared, *(shared if len(shared) == 1 else [])):
        if candidate in times:
            return str(candidate)
    raise ConfigError(
        f"Model {info.name}:{info.version} joins feature service '{info.feature_service}' as "
        f"of each row's event time, and which column of '{table}' holds it is not known.",
        hint=f"Pass --timestamp COLUMN (timestamp=...); the table's time columns are: "
        f"{', '.join(times) or 'none'}.",
    )


def _rebatch(dataset: Any, rows: int) -> Iterator[pa.Table]:
    """The dataset's rows in order, as tables of exactly ``rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in dataset.to_batches(batch_size=rows, batch_readahead=2, fragment_readahead=1):
        if batch.num_rows:
            pending.append(batch)
            size += batch.num_rows
        while size >= rows:
            whole = pa.Table.from_batches(pending, dataset.schema)
            yield whole.slice(0, rows).combine_chunks()
            rest = whole.slice(rows)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield pa.Table.from_batches(pending, dataset.schema).combine_chunks()


# -- progress and threads ------------------------------------------------------------------


class _Reporter:
    """Counts chunks read and rows scored; drives a progress bar (on stderr) or a callback."""

    def __init__(self, progress: Progress, total_rows: int) -> None:
        self.rows = self.chunks = 0
        self.callback = progress if callable(progress) else None
        self.bar: Any = None
        if progress is True:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            text = "{task.completed:,}/{task.total:,} rows, {task.fields[chunks]} chunks"
            columns = (TextColumn("scoring"), BarColumn(), TextColumn(text), TimeElapsedColumn())
            self.bar = Progress(*columns, console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("scoring", total=max(total_rows, 1), chunks=0)

    def joined(self) -> None:
        """Called when a chunk has been read (and joined to its features)."""
        self.chunks += 1
        if self.bar is not None:
            self.bar.update(self.task, chunks=self.chunks)

    def scored(self, rows: int) -> None:
        """Called after each scored batch of ``rows`` rows."""
        self.rows += rows
        if self.bar is not None:
            self.bar.update(self.task, completed=self.rows)
        if self.callback is not None:
            self.callback(self.chunks, self.rows)

    def close(self) -> None:
        """Remove the progress bar."""
        if self.bar is not None:
            self.bar.stop()


def _counted(scored: Iterator[pa.Table], reporter: _Reporter) -> Iterator[pa.Table]:
    for table in scored:
        reporter.scored(table.num_rows)
        yield table


def _on_thread(items: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Run ``items`` on a thread of its own, at most ``depth`` results ahead of the reader.

    An error on the thread is raised in the reader; a reader that stops early stops the
    thread (once the item it works on is done).
    """
    import queue
    import threading

    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    break
            else:
                put(("done", None))
        except BaseException as exc:
            put(("error", exc))
        finally:
            getattr(items, "close", lambda: None)()

    thread = threading.Thread(target=produce, name="plinth-predict", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join()


# -- Ray -----------------------------------------------------------------------------------


class _RayScorer:
    """A Ray Data actor: gets the loaded model once, then scores chunk after chunk.

    A PlinthError comes back as a one-row table naming it (Ray would wrap it beyond
    recognition), for the driver to raise.
    """

    def __init__(self, model: tuple[Any], plan: ScoringPlan) -> None:
        import ray

        self.model = ray.get(model[0]) if isinstance(model[0], ray.ObjectRef) else model[0]
        self.plan = plan

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pickle

        try:
            return score_chunk(self.model, batch, self.plan)
        except PlinthError as exc:
            error = pickle.dumps((type(exc), exc.message, exc.hint))
            return pa.table({_ERROR: [error]})


class _RayPool:
    """A connection to a Ray cluster (made here, or the one this process has already) that
    scores chunks in order with a pool of Ray Data actors."""

    def __init__(self, address: str | None) -> None:
        import importlib.util

        if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
            raise ConfigError(
                "The Ray executor needs Ray Data, which is not installed.",
                hint="Install it with: pip install 'plinth-ai[ray]'.",
            )
        import ray
        from ray import data as ray_data

        from plinth.training.ray_launcher import connect

        self.ray, self.connected = ray, not ray.is_initialized()
        where = address or os.environ.get(RAY_ADDRESS_ENV) or os.environ.get("RAY_ADDRESS")
        connect(where or "auto", log_to_driver=False)
        self.context = context = ray_data.DataContext.get_current()
        self.saved = context.execution_options.preserve_order, context.enable_progress_bars
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        self.logger = logging.getLogger("ray.data")  # its INFO lines would drown the summary
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def score(self, job: _Job, chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """Put the chunks in the object store, score them on the actors, yield the results."""
        from ray import data as ray_data

        ray = self.ray
        # A slice would be pickled with its whole parent's buffers: each chunk is copied.
        refs = [ray.put(chunk.take(pa.array(range(chunk.num_rows)))) for chunk in chunks]
        if not refs:
            return
        actors = max(1, min(len(refs), int(ray.cluster_resources().get("CPU", 1))))
        dataset = ray_data.from_arrow_refs(refs).map_batches(
            _RayScorer,
            fn_constructor_args=((ray.put(job.model),), job.scoring),
            batch_format="pyarrow",
            batch_size=None,
            compute=ray_data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            if _ERROR in batch.column_names:
                import pickle

                kind, message, hint = pickle.loads(batch.column(_ERROR)[0].as_py())
                raise kind(message, hint=hint)
            yield batch

    def close(self) -> None:
        """Restore Ray Data's settings; disconnect if the connection was made here."""
        options = self.context.execution_options
        options.preserve_order, self.context.enable_progress_bars = self.saved
        self.logger.setLevel(self.level)
        if self.connected:
            self.ray.shutdown()

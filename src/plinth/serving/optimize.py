"""Model optimization: convert a registered version to ONNX, optionally with int8 weights,
check it against the original, and register it as the model's next version.

``plinth optimize delay:3 --onnx [--quantize dynamic]`` (or :func:`optimize`):

1. **Validation data**: a lake table (``data="flights@4"``), else a deterministic sample of
   ``sample_rows`` rows of the version's training set, else its input example; prepared with
   the version's signature as ``predict`` prepares a request.
2. **Conversion** (:mod:`plinth.serving.onnx_convert`): the ONNX version takes the same
   request and its ``predict`` answers like the original's (labels, probabilities or values).
3. **Quantization** (``quantize="dynamic"``): int8 weights for the matrix products but the
   first; tree ensembles and ``ai.onnx.ml`` linear models have none and stay as they are.
4. **Check**: class probabilities (classifiers with ``predict_proba``) or predictions are
   compared on every validation row; the error is ``max |onnx - original| / max(1,
   |original|)``. With a ``label`` column, metrics are measured before and after: AUC, log
   loss and accuracy for binary classifiers and scores, log loss and accuracy for other
   classifiers, RMSE and MAE for regressors.
5. **Registration** with the original's signature, example, feature service, training set,
   tags and metrics, plus ``optimize.*`` metrics and the whole result as JSON in the tag
   ``optimization`` (:func:`optimization_of`).

Pass rules (``tolerance`` and ``metric_tolerance`` override the defaults): a plain conversion
needs an error of at most :data:`TOLERANCE` (1e-4); a quantized one checked with a label
needs every checked metric within :data:`METRIC_TOLERANCE` (AUC and accuracy may drop by
0.01; RMSE and MAE may grow by 1 %), and without a label an error of at most
:data:`QUANTIZED_TOLERANCE` (0.05). A version that fails is never registered
(:class:`OutputMismatchError`). Latencies are medians of one-row and :data:`BATCH_ROWS`-row
calls of each flavor's own ``predict`` on one thread (ONNX Runtime with one intra-op thread).

Example:
    >>> # result = optimize(ws, "delay:3", quantize="dynamic", label="delayed")
    >>> # result.target, f"{result.size_ratio:.0%}", result.metric_deltas
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, SchemaMismatchError
from plinth.serving import onnx_convert as conv

if TYPE_CHECKING:
    from plinth.registry.records import LoadedModel, ModelVersionInfo
    from plinth.workspace import Workspace

#: Quantization modes: ``dynamic`` (int8 weights, activations quantized at run time).
QUANTIZE_MODES = ("dynamic",)
#: Largest accepted output error of a plain conversion.
TOLERANCE = 1e-4
#: Largest accepted output error of a quantized model checked without labels.
QUANTIZED_TOLERANCE = 0.05
#: Largest accepted metric loss of a quantized model (AUC, accuracy; relative RMSE, MAE).
METRIC_TOLERANCE = 0.01
#: Metrics a quantized model is checked on, and whether higher is better.
CHECKED = {"auc": True, "accuracy": True, "rmse": False, "mae": False}
#: Rows of the batch whose predict latency is measured; timed calls of one row and a batch.
BATCH_ROWS, ROW_CALLS, BATCH_CALLS = 1000, 200, 20
#: The tag that holds the optimization result of an optimized version, as JSON.
TAG = "optimization"


class OutputMismatchError(SchemaMismatchError):
    """The optimized model's outputs or metrics differ from the original's beyond the
    tolerance; nothing was registered. ``result`` holds the measured figures."""

    def __init__(self, message: str, *, hint: str | None = None, result: Any = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`optimize` measured, and the version it registered (``target``).

    Sizes are bytes: ``size_before`` the original's stored model files, ``size_onnx`` the
    ONNX model before quantization, ``size_after`` the optimized model. Latencies are median
    milliseconds of one row and of ``batch_rows`` rows. ``error`` is the checked output error
    (see the module docs), ``max_abs_diff`` the largest absolute output difference.

    Example:
        >>> # optimize(ws, "mlp:1", quantize="dynamic").size_ratio
        >>> # 0.27
    """

    source: str
    target: str | None
    flavor: str
    quantize: str | None
    converter: str
    data: str
    rows: int
    compared: str
    size_before: int
    size_onnx: int
    size_after: int
    row_ms_before: float
    row_ms_after: float
    batch_ms_before: float
    batch_ms_after: float
    batch_rows: int
    max_abs_diff: float
    error: float
    tolerance: float
    metric_tolerance: float
    label: str | None
    label_agreement: float | None
    int8_tensors: int
    passed: bool
    reason: str
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        """The optimized size as a fraction of the original's (0.27: 73 % smaller)."""
        return self.size_after / self.size_before if self.size_before else math.nan

    @property
    def metric_deltas(self) -> dict[str, float]:
        """Each metric after minus before (a negative AUC delta is a loss)."""
        after = self.metrics_after
        return {k: after[k] - v for k, v in self.metrics_before.items() if k in after}

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with the size ratio and the metric deltas.

        Example:
            >>> # json.dumps(optimize(ws, "delay:3").to_dict())
        """
        from plinth.registry.records import json_ready

        data = asdict(self)
        data["size_ratio"] = self.size_ratio
        data["metric_deltas"] = self.metric_deltas
        return json_ready(data)


def optimization_of(info: ModelVersionInfo) -> dict[str, Any] | None:
    """The optimization result recorded with a version that :func:`optimize` registered.

    Example:
        >>> # optimization_of(ws.models.get("delay:4"))["size_ratio"]
    """
    text = info.tags.get(TAG)
    return json.loads(text) if text else None


# -- validation data -------------------------------------------------------------------------


def _table(ws: Workspace, info: ModelVersionInfo, data: str | None) -> tuple[Any, str] | None:
    if data:
        name, _, version = data.partition("@")
        if version and not version.strip().isdigit():
            raise ConfigError(
                f"'{data}' does not name a table version.",
                hint="Write TABLE or TABLE@N with N a version number.",
            )
        found = ws.lake.version(name, int(version) if version else None)
        return ws.lake.read(name, found.version), f"table {name}@{found.version}"
    if info.training_set_id:
        table = ws.features.training_set(info.training_set_id).table
        return table, f"training set {info.training_set_id}"
    return None


def _input_columns(info: ModelVersionInfo, loaded: LoadedModel) -> list[str] | None:
    """The columns the model takes; ``None`` (a tensor model): every column but the label."""
    from plinth.registry.flavors import get_flavor

    if info.signature is not None:
        return info.signature.columns
    flavor = get_flavor(loaded.flavor)
    names = flavor.feature_names(loaded.raw) if hasattr(flavor, "feature_names") else None
    if not names:
        raise ConfigError(
            f"Model {loaded.label} has no signature, so the columns it takes are unknown.",
            hint="Register the version with an input example (signature='auto').",
        )
    return [str(n) for n in names]


def validation_data(
    ws: Workspace,
    info: ModelVersionInfo,
    loaded: LoadedModel,
    *,
    data: str | None = None,
    label: str | None = None,
    sample_rows: int = 2000,
) -> tuple[Any, Any, str]:
    """The validation inputs (before ``prepare``), their labels (or ``None``) and where they
    came from: a lake table, else the version's training set, else its input example.

    Example:
        >>> # inputs, labels, source = validation_data(ws, info, loaded, label="delayed")
    """
    import numpy as np

    found = _table(ws, info, data)
    if found is None:
        example = ws.models.example(info.uri)
        if example is None:
            raise ConfigError(
                f"Model {info.name}:{info.version} has no training set and no input example "
                "to check the optimized model on.",
                hint="Pass validation data: --data TABLE[@VERSION] (data='table@N').",
            )
        if label is not None:
            raise SchemaMismatchError(
                f"Model {info.name}:{info.version} has no training set, and its input "
                f"example has no label column '{label}'.",
                hint="Pass a table with the label: --data TABLE[@VERSION].",
            )
        return example, None, "input example"
    table, source = found
    if label is not None:
        if label not in table.column_names:
            raise SchemaMismatchError(
                f"The {source} has no label column '{label}'.",
                hint=f"Its columns are: {', '.join(table.column_names)}.",
            )
        table = table.filter(table.column(label).is_valid())
    if table.num_rows > sample_rows:
        rng = np.random.default_rng(0)
        table = table.take(np.sort(rng.choice(table.num_rows, sample_rows, replace=False)))
    if table.num_rows == 0:
        raise SchemaMismatchError(
            f"The {source} has no rows to check the optimized model on.",
            hint="Pass a table with rows: --data TABLE[@VERSION].",
        )
    columns = _input_columns(info, loaded)
    missing = [c for c in columns or [] if c not in table.column_names]
    if missing:
        raise SchemaMismatchError(
            f"The {source} lacks column '{missing[0]}', which the model takes.",
            hint="Pass a table with the model's input columns: --data TABLE[@VERSION].",
        )
    if columns is None:
        inputs = (table.drop_columns([label]) if label else table).to_pandas().to_numpy()
    else:
        inputs = table.select(columns).to_pandas()
    labels = None if label is None else table.column(label).to_numpy(zero_copy_only=False)
    if labels is not None and labels.dtype == np.bool_:
        labels = labels.astype(np.int64)
    return inputs, labels, source


# -- comparing and scoring -------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """A model's answers on the validation rows: the prediction and, for classifiers with
    ``predict_proba``, the class probabilities."""

    prediction: Any
    probabilities: Any = None


def compare(
    predicts: str, before: Outputs, after: Outputs
) -> tuple[str, float, float, float | None]:
    """What was compared, the largest absolute difference, the checked error, and the share
    of equal labels (for classifiers).

    The error is ``max |after - before| / max(1, |before|)``; for a classifier without
    probabilities, the share of differing labels. NaN on both sides counts as equal.

    Example:
        >>> import numpy as np
        >>> _, diff, error, _ = compare("value", Outputs(np.array([1.0, 200.0])),
        ...                             Outputs(np.array([1.0, 200.02])))
        >>> round(diff, 4), round(error, 6)
        (0.02, 0.0001)
    """
    import numpy as np

    agreement = None
    if predicts == "label":
        agreement = float(np.mean(before.prediction.ravel() == after.prediction.ravel()))
    if before.probabilities is not None:
        compared, old, new = "class probabilities", before.probabilities, after.probabilities
    elif agreement is not None:
        return "labels", math.nan, 1.0 - agreement, agreement
    else:
        compared, old, new = "predictions", before.prediction, after.prediction
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if old.size != new.size:
        raise SchemaMismatchError(
            f"The ONNX model returns {new.size} values where the original returns {old.size}.",
            hint="This model does not convert cleanly; serve the original version.",
        )
    diff = np.abs(new.reshape(old.shape) - old)
    diff[np.isnan(old) & np.isnan(new.reshape(old.shape))] = 0.0
    diff[np.isnan(diff)] = np.inf
    if diff.size == 0:
        return compared, 0.0, 0.0, agreement
    scaled = diff / np.maximum(1.0, np.nan_to_num(np.abs(old), nan=1.0))
    return compared, float(diff.max()), float(scaled.max()), agreement


@dataclass(frozen=True)
class Scorer:
    """Metrics of outputs against labels, of the kind the original's outputs call for:
    ``classes`` (labels and probabilities of known classes), ``labels`` (labels only),
    ``binary`` (one score per row for 0/1 labels; ``squash`` turns logits into
    probabilities), ``multiclass`` (a score per class) or ``regression``.

    Example:
        >>> import numpy as np
        >>> scorer = Scorer.of("value", Outputs(np.array([0.2, 0.8])), np.array([0, 1]), None)
        >>> scorer.metrics(Outputs(np.array([0.2, 0.8])))["auc"]
        1.0
    """

    kind: str
    labels: Any
    classes: Any = None
    squash: bool = False

    @classmethod
    def of(cls, predicts: str, before: Outputs, labels: Any, model: Any) -> Scorer:
        """Choose the metrics from the original's outputs and the labels."""
        import numpy as np

        y = np.asarray(labels)
        if before.probabilities is not None:
            width = np.asarray(before.probabilities).shape[1]
            classes = np.asarray(getattr(model, "classes_", np.arange(width)))
            if not np.isin(y, classes).all():
                raise SchemaMismatchError(
                    "The label column holds values that are not among the model's classes "
                    f"({', '.join(str(c) for c in classes[:10])}).",
                    hint="Pass the column the model was trained to predict with --label.",
                )
            return cls("classes", y, classes)
        if predicts == "label":
            return cls("labels", y)
        scores = np.asarray(before.prediction, dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] > 1:
            return cls("multiclass", y)
        if y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and np.unique(y).size == 2:
            outside = bool(np.nanmin(scores) < 0.0 or np.nanmax(scores) > 1.0)
            return cls("binary", y.astype(np.float64), squash=outside)
        if predicts == "probability":
            raise SchemaMismatchError(
                "The model predicts probabilities, but the label column does not hold both "
                "0 and 1.",
                hint="Pass the column the model was trained to predict with --label.",
            )
        return cls("regression", y.astype(np.float64))

    def metrics(self, outputs: Outputs) -> dict[str, float]:
        """The metrics of ``outputs`` against the labels.

        Example:
            >>> # Scorer.of("value", before, labels, model).metrics(after)
        """
        import numpy as np

        from plinth.tracking import evaluation

        y = self.labels
        prediction = np.asarray(outputs.prediction)
        if self.kind in ("classes", "labels"):
            figures = {"accuracy": float(np.mean(prediction.ravel() == y))}
            if self.kind == "labels":
                return figures
            probabilities = np.asarray(outputs.probabilities, dtype=np.float64)
            if probabilities.shape[1] == 2:
                positive = (y == self.classes[1]).astype(np.float64)
                return {
                    "auc": evaluation.roc_auc(positive, probabilities[:, 1]),
                    "log_loss": evaluation.log_loss(positive, probabilities[:, 1]),
                    **figures,
                }
            index = [int(np.flatnonzero(self.classes == value)[0]) for value in y]
            chosen = np.clip(probabilities[np.arange(len(y)), index], 1e-15, 1.0)
            return {"log_loss": float(-np.mean(np.log(chosen))), **figures}
        scores = prediction.astype(np.float64)
        if self.kind == "multiclass":
            return {"accuracy": float(np.mean(np.argmax(scores, axis=1) == y))}
        scores = scores.ravel()
        if self.kind == "binary":
            squashed = 1.0 / (1.0 + np.exp(-np.clip(scores, -500, 500)))
            probability = squashed if self.squash else scores
            return {
                "auc": evaluation.roc_auc(y, scores),
                "log_loss": evaluation.log_loss(y, probability),
                "accuracy": evaluation.accuracy(y, probability),
            }
        errors = scores - y
        return {"rmse": float(np.sqrt(np.mean(errors**2))), "mae": float(np.mean(np.abs(errors)))}


def metric_loss(name: str, before: float, after: float) -> float:
    """How much worse a metric got: the drop of AUC or accuracy, the relative rise of RMSE
    or MAE.

    Example:
        >>> round(metric_loss("rmse", 10.0, 10.5), 3)
        0.05
    """
    return before - after if CHECKED[name] else (after - before) / max(abs(before), 1e-12)


def verdict(
    quantize: str | None,
    error: float,
    tolerance: float,
    before: dict[str, float],
    after: dict[str, float],
    metric_tolerance: float,
) -> tuple[bool, str]:
    """Whether the optimized model passes (see the module docs), and why, in words.

    Example:
        >>> verdict(None, 2e-7, 1e-4, {}, {}, 0.01)
        (True, 'the output error 2e-07 is within the tolerance 0.0001')
    """
    checked = [
        k for k, v in before.items()
        if k in CHECKED and math.isfinite(v) and math.isfinite(after.get(k, math.nan))
    ]  # fmt: skip
    if quantize is not None and checked:
        worst = max(checked, key=lambda k: metric_loss(k, before[k], after[k]))
        loss = metric_loss(worst, before[worst], after[worst])
        if loss > metric_tolerance:
            return False, (
                f"{worst} went from {before[worst]:.4f} to {after[worst]:.4f}, a loss of "
                f"{loss:.4f}, more than the metric tolerance {metric_tolerance:g}"
            )
        return True, (
            f"every checked metric ({', '.join(sorted(checked))}) is within "
            f"{metric_tolerance:g} of the original's"
        )
    if error > tolerance:
        return False, f"the output error {error:.3g} exceeds the tolerance {tolerance:g}"
    return True, f"the output error {error:.3g} is within the tolerance {tolerance:g}"


# -- measuring -------------------------------------------------------------------------------


@contextlib.contextmanager
def one_thread(flavor: str) -> Iterator[None]:
    """Limit OpenMP libraries (LightGBM, XGBoost) and PyTorch to one thread for a while.

    Example:
        >>> with one_thread("sklearn"):
        ...     pass
    """
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(ImportError):  # threadpoolctl comes with scikit-learn
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        if flavor == "pytorch":
            import torch

            stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(1)
        yield


def _median_ms(call: Callable[[], Any], calls: int) -> float:
    import statistics

    for _ in range(max(3, calls // 10)):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def _rows(prepared: Any, count: int) -> Any:
    """The first ``count`` rows, repeated when there are fewer."""
    import numpy as np

    index = np.resize(np.arange(len(prepared)), count)
    if hasattr(prepared, "iloc"):
        return prepared.iloc[index].reset_index(drop=True)
    return prepared[index]


def latency(predict: Callable[[Any], Any], prepared: Any, flavor: str) -> tuple[float, float]:
    """Median milliseconds of ``predict`` on one row and on :data:`BATCH_ROWS` rows, on one
    thread.

    Example:
        >>> import numpy as np
        >>> row, batch = latency(lambda x: x.sum(), np.ones((3, 2)), "sklearn")
    """
    one, batch = _rows(prepared, 1), _rows(prepared, BATCH_ROWS)
    with one_thread(flavor):
        row = _median_ms(lambda: predict(one), ROW_CALLS)
        return row, _median_ms(lambda: predict(batch), BATCH_CALLS)


def _numpy(value: Any) -> Any:
    import numpy as np

    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# -- optimizing ------------------------------------------------------------------------------


def _check_options(
    quantize: str | None, tolerance: float | None, metric_tolerance: float, sample_rows: int
) -> None:
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConfigError(
            f"'{quantize}' is not a quantization mode.",
            hint=f"Use one of: {', '.join(QUANTIZE_MODES)} (int8 weights), or none.",
        )
    if sample_rows < 1:
        raise ConfigError("sample_rows must be at least 1.", hint="Pass e.g. 2000.")
    for name, value in (("tolerance", tolerance), ("metric_tolerance", metric_tolerance)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0, not {value}.")


def optimize(
    ws: Workspace,
    uri: str,
    *,
    quantize: str | None = None,
    data: str | None = None,
    label: str | None = None,
    tolerance: float | None = None,
    metric_tolerance: float = METRIC_TOLERANCE,
    sample_rows: int = 2000,
    dry_run: bool = False,
) -> OptimizeResult:
    """Convert a model version to ONNX (``quantize="dynamic"``: with int8 weights), check it
    against the original on validation data, and register it as the model's next version.

    ``data`` is a lake table ``TABLE`` or ``TABLE@VERSION`` to check on (default: a sample
    of ``sample_rows`` rows of the version's training set, else its input example); ``label``
    names its label column, to measure metrics before and after. ``tolerance`` bounds the
    output error (default :data:`TOLERANCE`; :data:`QUANTIZED_TOLERANCE` for a quantized
    model checked without labels); ``metric_tolerance`` bounds the metric loss of a quantized
    model checked with labels. A model that fails raises :class:`OutputMismatchError` and is
    not registered. ``dry_run=True`` converts, checks and measures only: nothing is
    registered, and a failed check is reported in the result, not raised.

    Example:
        >>> # result = optimize(ws, "mlp@champion", quantize="dynamic", data="flights@3",
        >>> #                   label="delayed")
        >>> # ws.models.load(result.target).predict(frame)
    """
    from plinth.registry.flavors import get_flavor
    from plinth.registry.flavors import onnx as onnx_flavor

    _check_options(quantize, tolerance, metric_tolerance, sample_rows)
    info = ws.models.get(uri)
    conv.converter_of(info.flavor)
    loaded = ws.models.load(info.uri)
    inputs, labels, source = validation_data(
        ws, info, loaded, data=data, label=label, sample_rows=sample_rows
    )
    prepared = loaded.prepare(inputs)
    flavor = get_flavor(loaded.flavor)
    try:
        reference = _numpy(flavor.predict(loaded.raw, prepared, loaded.meta))
    except Exception as exc:
        raise SchemaMismatchError(
            f"Model {loaded.label} could not predict on the {source}: {type(exc).__name__}: {exc}",
            hint="Pass validation data the model accepts: --data TABLE[@VERSION].",
        ) from exc
    converted = conv.convert(loaded, prepared, reference)
    model = conv.quantize_int8(converted.model) if quantize else converted.model
    payload = model.SerializeToString()
    session = conv.session(payload)
    names = [model.graph.output[0].name]
    if converted.probabilities:
        names.append(converted.probabilities)
    try:
        outputs = session.run(names, onnx_flavor.feed(session, prepared))
    except Exception as exc:
        raise ConfigError(
            f"The ONNX version of {loaded.label} failed on the {source}: "
            f"{type(exc).__name__}: {exc}",
            hint="This model does not convert cleanly; serve the original version.",
        ) from exc
    proba = None
    if converted.probabilities:
        predict_proba = getattr(flavor, "predict_proba", None)
        proba = _numpy(
            predict_proba(loaded.raw, prepared, loaded.meta)
            if predict_proba
            else loaded.raw.predict_proba(prepared)
        )
    before, after = Outputs(reference, proba), Outputs(*outputs)
    compared, max_abs, error, agreement = compare(converted.predicts, before, after)
    metrics_before: dict[str, float] = {}
    metrics_after: dict[str, float] = {}
    if labels is not None:
        scorer = Scorer.of(converted.predicts, before, labels, loaded.raw)
        metrics_before, metrics_after = scorer.metrics(before), scorer.metrics(after)
    if tolerance is None:
        tolerance = QUANTIZED_TOLERANCE if quantize else TOLERANCE
    passed, reason = verdict(
        quantize, error, tolerance, metrics_before, metrics_after, metric_tolerance
    )
    row_before, batch_before = latency(
        lambda rows: flavor.predict(loaded.raw, rows, loaded.meta), prepared, loaded.flavor
    )
    row_after, batch_after = latency(
        lambda rows: onnx_flavor.predict(session, rows, {}), prepared, "onnx"
    )
    example = info.details.get("example")
    result = OptimizeResult(
        source=info.uri,
        target=None,
        flavor=info.flavor,
        quantize=quantize,
        converter=converted.converter,
        data=source,
        rows=len(prepared),
        compared=compared,
        size_before=sum(
            len(ws.artifacts.get_bytes(d)) for n, d in info.files.items() if n != example
        ),
        size_onnx=len(converted.model.SerializeToString()),
        size_after=len(payload),
        row_ms_before=row_before,
        row_ms_after=row_after,
        batch_ms_before=batch_before,
        batch_ms_after=batch_after,
        batch_rows=BATCH_ROWS,
        max_abs_diff=max_abs,
        error=error,
        tolerance=tolerance,
        metric_tolerance=metric_tolerance,
        label=label,
        label_agreement=agreement,
        int8_tensors=conv.int8_tensors(model),
        passed=passed,
        reason=reason,
        metrics_before=metrics_before,
        metrics_after=metrics_after,
    )
    if dry_run:
        return result
    if not passed:
        raise OutputMismatchError(
            f"The {'int8 quantized ' if quantize else ''}ONNX version of {loaded.label} does "
            f"not match the original on {result.rows:,} rows of the {source}: {reason}. "
            "Nothing was registered.",
            hint="Check the validation data (--data, --label), or accept a larger difference "
            "with --tolerance" + (" or --metric-tolerance." if quantize else "."),
            result=result,
        )
    return replace(result, target=_register(ws, info, model, session, prepared, result).uri)


def _register(
    ws: Workspace,
    info: ModelVersionInfo,
    model: Any,
    session: Any,
    prepared: Any,
    result: OptimizeResult,
) -> ModelVersionInfo:
    """Register the checked ONNX model as the next version of the original's model."""
    from plinth.registry.flavors import onnx as onnx_flavor
    from plinth.registry.signature import Signature, describe_data

    head = _rows(prepared, min(5, len(prepared)))
    signature = None
    if info.signature is not None:
        output = onnx_flavor.predict(session, head, {})
        signature = Signature(info.signature.inputs, describe_data(output, output=True))
    example = ws.models.example(info.uri)
    what = "ONNX with int8 weights (dynamic quantization)" if result.quantize else "ONNX"
    metrics = {
        **info.metrics,
        "optimize.size_ratio": result.size_ratio,
        "optimize.max_abs_diff": result.max_abs_diff,
        "optimize.row_ms": result.row_ms_after,
        "optimize.batch_ms": result.batch_ms_after,
        **{f"optimize.{k}_delta": v for k, v in result.metric_deltas.items()},
    }
    record = {k: v for k, v in result.to_dict().items() if k != "target"}
    return ws.models.register(
        model,
        info.name,
        features=info.feature_service,
        signature=signature,
        example=head if example is None else example,
        training_set=info.training_set_id,
        metrics={k: v for k, v in metrics.items() if math.isfinite(v)},
        description=(
            f"{what} conversion of {info.name}:{info.version} ({info.flavor}) by plinth "
            f"optimize: {result.size_ratio:.0%} of its size; {result.reason} on "
            f"{result.rows:,} rows of the {result.data}."
        ),
        tags={
            **info.tags,
            "optimized_from": f"{info.name}:{info.version}",
            TAG: json.dumps(record, separators=(",", ":"), sort_keys=True),
        },
        flavor="onnx",
    )

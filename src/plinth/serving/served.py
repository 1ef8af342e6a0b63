"""A model version ready to serve: the loaded model, its checks, features and batcher.

Loading does everything a first request would otherwise pay for: the model is read and
verified, the feature service resolved and the online store opened, the predictor's direct
path checked, and one prediction made on the stored input example. Only then is the version
ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import PlinthError
from plinth.serving.batcher import Batcher, Job
from plinth.serving.inputs import Columns, InputSchema
from plinth.serving.online import OnlineFeatures
from plinth.serving.predictor import Predictor, example_columns

if TYPE_CHECKING:
    from plinth.registry.records import LoadedModel, ModelVersionInfo
    from plinth.serving.options import ServeOptions
    from plinth.workspace import Workspace

#: Flavors whose predict takes any number of rows at once.
VECTORIZABLE = {"lightgbm", "xgboost", "sklearn", "onnx", "pytorch"}


class PredictionError(PlinthError):
    """The model raised on a request's input (for example a null it does not accept)."""

    status_code = 422


@dataclass
class Answer:
    """One request's share of a batch: its predictions, the inputs the model saw, timings."""

    predictions: np.ndarray
    inputs: Columns
    predict_s: float
    lookup_s: float
    batch_rows: int


class ServedVersion:
    """One loaded model version with its input checks, online features and batcher.

    Example:
        >>> # served = ServedVersion.load(ws, ws.models.get("delay@champion"), options)
        >>> # answer = await served.predict({"origin": ["JFK"], ...}, 1)
    """

    def __init__(
        self,
        info: ModelVersionInfo,
        model: LoadedModel,
        predictor: Predictor,
        features: OnlineFeatures | None,
        options: ServeOptions,
    ) -> None:
        self.info = info
        self.model = model
        self.name = info.name
        self.version = info.version
        self.label = f"{info.name}:{info.version}"
        self.predictor = predictor
        self.features = features
        #: Called once per batch with (model, version, rows, predict s, lookup s).
        self.observe: Callable[[str, int, int, float, float], None] | None = None
        signature = model.signature
        specs = signature.inputs if signature is not None else None
        columns = (
            [(c.name, c.type) for c in specs]
            if specs is not None and isinstance(specs, tuple | list)
            else None
        )
        fetched = set(features.columns) if features is not None else set()
        self.schema = InputSchema(
            columns,
            fetched=fetched,
            keys=features.keys if features is not None else (),
            key_kinds=features.key_kinds if features is not None else None,
        )
        self.input_names = [n for n, _ in columns] if columns is not None else None
        tensor_fixed = specs is not None and columns is None and specs.shape[:1] != (-1,)
        batching = options.batching and model.flavor in VECTORIZABLE and not tensor_fixed
        self.batcher = Batcher(
            self._run,
            max_rows=options.max_batch_rows if batching else 1,
            max_wait_s=options.max_wait_ms / 1000.0 if batching else 0.0,
            max_queue_rows=options.max_queue_rows,
        )

    @classmethod
    def load(cls, ws: Workspace, info: ModelVersionInfo, options: ServeOptions) -> ServedVersion:
        """Load, verify and warm up one version (blocking; run it off the event loop).

        Example:
            >>> # ServedVersion.load(ws, ws.models.get("delay:3"), ServeOptions())
        """
        uri = f"{info.name}:{info.version}"
        model = ws.models.load(uri)
        example = ws.models.example(uri)
        predictor = Predictor(model, example)
        features = (
            OnlineFeatures.of(ws, info.feature_service)
            if info.feature_service and options.online_features
            else None
        )
        served = cls(info, model, predictor, features, options)
        served.warm_up(example)
        return served

    def warm_up(self, example: Any) -> None:
        """Predict once on the input example so the first request pays no first-call cost."""
        if example is None or self.input_names is None:
            return
        columns = example_columns(
            example.head(1) if hasattr(example, "head") else example, self.input_names
        )
        times = []
        for _ in range(5):
            begin = time.perf_counter()
            self.predictor(columns, 1)
            times.append(time.perf_counter() - begin)
        self.batcher.offload = sorted(times)[2] > self.batcher.offload_after_s

    def check(self, columns: Columns) -> None:
        """Raise naming the first missing, extra or mistyped field of a request."""
        self.schema.check(columns)

    async def predict(self, job: Job) -> Answer:
        """Queue the request's rows for the next batch and wait for its answer.

        Example:
            >>> # await served.predict(Job({"hour": [5], ...}, 1))
        """
        return await self.batcher.submit(job)

    def _run(self, jobs: Sequence[Job]) -> list[Answer]:
        total = sum(j.n for j in jobs)
        lookup_s = 0.0
        fetched: Columns = {}
        if self.features is not None and not all(self.features.provided(j.columns) for j in jobs):
            keys = {k: _concat([j.columns[k] for j in jobs]) for k in self.features.keys}
            fetched, lookup_s = self.features.fetch(keys, total, now=jobs[0].now)
        names = self.input_names if self.input_names is not None else list(jobs[0].columns)
        inputs: Columns = {}
        for name in names:
            if len(jobs) == 1 and name in jobs[0].columns:
                inputs[name] = jobs[0].columns[name]
                continue
            values: list[Any] = []
            offset = 0
            for job in jobs:
                own = job.columns.get(name)
                values.extend(own if own is not None else fetched[name][offset : offset + job.n])
                offset += job.n
            inputs[name] = values
        begin = time.perf_counter()
        try:
            predictions = self.predictor(inputs, total)
        except PlinthError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"Model {self.label} could not predict on this input: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="Check the values sent; online features that are missing or expired "
                "arrive as nulls, which this model may not accept.",
            ) from exc
        predict_s = time.perf_counter() - begin
        if self.observe is not None:
            self.observe(self.name, self.version, total, predict_s, lookup_s)
        if len(jobs) == 1:
            return [Answer(predictions, inputs, predict_s, lookup_s, total)]
        answers = []
        offset = 0
        for job in jobs:
            part = {k: v[offset : offset + job.n] for k, v in inputs.items()}
            answers.append(
                Answer(predictions[offset : offset + job.n], part, predict_s, lookup_s, total)
            )
            offset += job.n
        return answers

    async def close(self) -> None:
        """Answer every queued request, then stop the batcher."""
        await self.batcher.close()


def _concat(parts: list[list[Any]]) -> list[Any]:
    if len(parts) == 1:
        return parts[0]
    out: list[Any] = []
    for part in parts:
        out.extend(part)
    return out

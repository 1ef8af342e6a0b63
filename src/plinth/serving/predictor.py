"""Predictors: columns in, a NumPy array of predictions out, as fast as each flavor allows.

The general path builds a pandas DataFrame and goes through the model's checked ``predict``;
for a one-row request of a model with categorical columns that costs milliseconds (pandas'
category handling). Flavors that take a plain matrix get a direct path: a LightGBM booster
gets a float matrix with its own category codes (the mapping LightGBM stored at training
time, unknown categories as missing, as LightGBM itself does), an ONNX graph with one numeric
input gets a float32 matrix. A direct path is used only after it gave the same predictions as
the general path on the version's input example; otherwise the general path serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from plinth.registry.records import LoadedModel
from plinth.serving.inputs import Columns

log = logging.getLogger(__name__)

#: Below this many rows LightGBM and ONNX Runtime predict on one thread: spinning up a thread
#: pool costs more than a small batch takes.
SINGLE_THREAD_ROWS = 256
_NUMERIC = {"float", "integer", "boolean"}


class Predictor:
    """Predict from columns with a model version: ``predictor(columns, n) -> ndarray``.

    Example:
        >>> # predictor = Predictor(ws.models.load("delay@champion"))
        >>> # predictor({"hour": [5], ...}, 1)
    """

    def __init__(self, model: LoadedModel, example: Any = None) -> None:
        self.model = model
        signature = model.signature
        specs = signature.inputs if signature is not None else None
        self.tensor = specs is not None and not isinstance(specs, tuple | list)
        self.names: list[str] | None = (
            [c.name for c in specs] if specs is not None and not self.tensor else None
        )
        self.kinds = (
            {c.name: c.type for c in specs} if specs is not None and not self.tensor else {}
        )
        self.path = "general"
        self._direct: Callable[[Columns, int], np.ndarray] | None = self._direct_path()
        if self._direct is not None:
            if example is not None and self._agrees(example):
                self.path = "direct"
            else:
                self._direct = None

    def __call__(self, columns: Columns, n: int) -> np.ndarray:
        """Predictions for ``n`` rows of ``columns`` (a 1-D array, or 2-D for several outputs)."""
        out = self._direct(columns, n) if self._direct is not None else self._general(columns, n)
        out = np.asarray(out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return out

    # -- general path ------------------------------------------------------------------------

    def _general(self, columns: Columns, n: int) -> Any:
        import pandas as pd

        if self.tensor:
            return self.model.predict(np.asarray(columns["inputs"]))
        frame = pd.DataFrame(columns if self.names is None else {k: columns[k] for k in self.names})
        for name, kind in self.kinds.items():
            if kind == "float" and frame[name].dtype == object:
                frame[name] = frame[name].astype("float64")
        return self.model.predict(frame)

    # -- direct paths ------------------------------------------------------------------------

    def _direct_path(self) -> Callable[[Columns, int], np.ndarray] | None:
        if self.names is None:
            return None
        raw = self.model.raw
        if self.model.flavor == "lightgbm" and type(raw).__name__ == "Booster":
            return self._lightgbm(raw)
        if self.model.flavor == "onnx" and all(k in _NUMERIC for k in self.kinds.values()):
            inputs = raw.get_inputs()
            if len(inputs) == 1:
                return self._onnx(raw, inputs[0].name)
        return None

    def _matrix(self, categories: dict[str, dict[Any, int]], dtype: Any) -> Callable[..., Any]:
        names = self.names or []

        def matrix(columns: Columns, n: int) -> np.ndarray:
            out = np.empty((n, len(names)), dtype=dtype)
            for j, name in enumerate(names):
                values = columns[name]
                codes = categories.get(name)
                if codes is not None:
                    out[:, j] = [codes.get(v, np.nan) if v is not None else np.nan for v in values]
                elif n == 1:
                    value = values[0]
                    out[0, j] = np.nan if value is None else value
                else:
                    out[:, j] = [np.nan if v is None else v for v in values]
            return out

        return matrix

    def _lightgbm(self, booster: Any) -> Callable[[Columns, int], np.ndarray] | None:
        categorical = [n for n in self.names or [] if self.kinds[n] in ("categorical", "string")]
        stored = getattr(booster, "pandas_categorical", None) or []
        if len(stored) != len(categorical):
            return None
        codes = {
            name: {value: i for i, value in enumerate(values)}
            for name, values in zip(categorical, stored, strict=True)
        }
        matrix = self._matrix(codes, np.float64)

        def run(columns: Columns, n: int) -> np.ndarray:
            options = {"num_threads": 1} if n < SINGLE_THREAD_ROWS else {}
            return booster.predict(matrix(columns, n), **options)

        return run

    def _onnx(self, session: Any, input_name: str) -> Callable[[Columns, int], np.ndarray]:
        matrix = self._matrix({}, np.float32)
        wanted = self.model.meta.get("output")
        outputs = [wanted] if wanted else [session.get_outputs()[0].name]

        def run(columns: Columns, n: int) -> np.ndarray:
            return session.run(outputs, {input_name: matrix(columns, n)})[0]

        return run

    def _agrees(self, example: Any) -> bool:
        try:
            columns = example_columns(example, self.names or [])
            n = len(next(iter(columns.values())))
            direct = np.asarray(self._direct(columns, n))  # type: ignore[misc]
            general = np.asarray(self._general(columns, n))
            same = direct.shape == general.shape and np.allclose(
                direct, general, rtol=1e-5, atol=1e-6, equal_nan=True
            )
        except Exception as exc:  # a direct path that cannot run is simply not used
            log.info("direct path of %s not used: %s", self.model.label, exc)
            return False
        if not same:
            log.warning("direct path of %s disagrees with predict(); not used", self.model.label)
        return bool(same)


def example_columns(example: Any, names: Sequence[str]) -> Columns:
    """The columns of an input example (a DataFrame or Arrow table), as JSON would send them.

    Example:
        >>> import pandas as pd
        >>> example_columns(pd.DataFrame({"a": [1.5, None], "b": ["x", "y"]}), ["a", "b"])
        {'a': [1.5, None], 'b': ['x', 'y']}
    """
    import pandas as pd

    frame = example.to_pandas() if hasattr(example, "to_pandas") else pd.DataFrame(example)
    columns: Columns = {}
    for name in names:
        series = frame[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        values = series.astype(object).where(series.notna(), None).tolist()
        columns[name] = [v.item() if hasattr(v, "item") else v for v in values]
    return columns


def make_predictor(model: LoadedModel, example: Any = None) -> Predictor:
    """A :class:`Predictor` for ``model``, its direct path checked on ``example``.

    Example:
        >>> # make_predictor(ws.models.load("delay@champion"), ws.models.example("delay")).path
    """
    return Predictor(model, example)

"""LightGBM flavor: a ``Booster`` as model text; the scikit-learn wrappers pickled as well.

A ``Booster`` is stored only as LightGBM's text format and never unpickled. A wrapper
(``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) keeps its scikit-learn behaviour
(classes, ``predict_proba``) through a pickle, stored next to the booster's text.

Predictions of fewer than :data:`SINGLE_THREAD_ROWS` rows run on one thread: LightGBM's
OpenMP start-up costs milliseconds, far more than a small batch takes. String columns are
turned into pandas categories, which LightGBM maps onto the categories it was trained with.

Example:
    >>> # files, meta = save(booster); predict(load(files, meta), frame, meta)
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from plinth.registry.flavors import base_modules, class_path, derives_from

NAME = "lightgbm"
TEXT = "model.txt"
PICKLE = "model.pkl"
SINGLE_THREAD_ROWS = 1000


def matches(model: Any) -> bool:
    """Whether the object is a LightGBM booster or scikit-learn wrapper."""
    return "lightgbm" in base_modules(model)


def _is_booster(model: Any) -> bool:
    return derives_from(model, "lightgbm", "Booster")


def save(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Store the booster's text (and the pickled wrapper for a scikit-learn model)."""
    import lightgbm

    meta = {"class": class_path(model), "library": "lightgbm", "version": lightgbm.__version__}
    if _is_booster(model):
        return {TEXT: model.model_to_string().encode("utf-8")}, {**meta, "kind": "booster"}
    files = {
        TEXT: model.booster_.model_to_string().encode("utf-8"),
        PICKLE: pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
    }
    return files, {**meta, "kind": "sklearn"}


def unpickles(meta: Mapping[str, Any]) -> bool:
    """Whether loading unpickles: for the scikit-learn wrappers only."""
    return meta.get("kind") != "booster"


def load(files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """A ``Booster`` from its text, or the unpickled wrapper."""
    import lightgbm

    if not unpickles(meta):
        return lightgbm.Booster(model_str=files[TEXT].decode("utf-8"))
    return pickle.loads(files[PICKLE])


def _categorize(data: Any) -> Any:
    """String columns as pandas categories (LightGBM refuses object columns)."""
    if not hasattr(data, "columns"):
        return data
    from pandas.api import types as t

    strings = [
        c
        for c, dtype in data.dtypes.items()
        if (t.is_string_dtype(dtype) and not t.is_object_dtype(dtype))
        or (t.is_object_dtype(dtype) and t.infer_dtype(data[c], skipna=True) == "string")
    ]
    if not strings:
        return data
    return data.assign(**{c: data[c].astype("category") for c in strings})


def predict(model: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """The booster's (or wrapper's) ``predict``, on one thread for small batches."""
    data = _categorize(data)
    options = {"num_threads": 1} if len(data) < SINGLE_THREAD_ROWS else {}
    return model.predict(data, **options)


def predict_proba(model: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """A wrapper's ``predict_proba``, on one thread for small batches."""
    data = _categorize(data)
    options = {"num_threads": 1} if len(data) < SINGLE_THREAD_ROWS else {}
    return model.predict_proba(data, **options)


def feature_names(model: Any) -> list[str] | None:
    """The booster's feature names."""
    names = model.feature_name() if _is_booster(model) else getattr(model, "feature_name_", None)
    return list(names) if names else None

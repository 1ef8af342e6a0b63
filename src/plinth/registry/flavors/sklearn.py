"""scikit-learn flavor: any estimator or pipeline, stored as a pickle.

Pickles run code when loaded, so the registry unpickles only bytes whose digest the catalog
holds (see :mod:`plinth.registry.store`).

Example:
    >>> from sklearn.linear_model import LinearRegression
    >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    >>> files, meta = save(model)
    >>> round(float(predict(load(files, meta), [[2.0]], meta)[0]), 6)
    4.0
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from plinth.registry.flavors import base_modules, class_path

NAME = "sklearn"
FILE = "model.pkl"


def matches(model: Any) -> bool:
    """Whether the object is a scikit-learn estimator (its class derives from one)."""
    return "sklearn" in base_modules(model)


def save(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Pickle the estimator; record its class and the scikit-learn version."""
    import sklearn

    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {"class": class_path(model), "library": "scikit-learn", "version": sklearn.__version__}
    return {FILE: data}, meta


def unpickles(meta: Mapping[str, Any]) -> bool:
    """Always: the estimator is a pickle."""
    return True


def load(files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """Unpickle the estimator (the caller has verified the bytes against the catalog)."""
    return pickle.loads(files[FILE])


def predict(model: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """The estimator's ``predict``."""
    return model.predict(data)


def feature_names(model: Any) -> list[str] | None:
    """The column names the estimator was fitted on, when it was fitted on a DataFrame."""
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None

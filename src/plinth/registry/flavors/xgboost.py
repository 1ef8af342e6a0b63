"""XGBoost flavor: boosters and scikit-learn wrappers in XGBoost's own UBJSON format.

Nothing is pickled: a wrapper's scikit-learn attributes travel inside the model file, and
loading builds an empty wrapper of a known class and reads the file into it.

Example:
    >>> # files, meta = save(regressor); predict(load(files, meta), frame, meta)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError
from plinth.registry.flavors import base_modules, class_path, derives_from

NAME = "xgboost"
FILE = "model.ubj"
#: The wrapper classes a stored model may be read back into.
WRAPPERS = (
    "XGBModel",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)


def matches(model: Any) -> bool:
    """Whether the object is an XGBoost booster or scikit-learn wrapper."""
    return "xgboost" in base_modules(model)


def save(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Store the model in UBJSON, with the wrapper's class name."""
    import xgboost

    meta = {"class": class_path(model), "library": "xgboost", "version": xgboost.__version__}
    if derives_from(model, "xgboost", "Booster"):
        return {FILE: bytes(model.save_raw(raw_format="ubj"))}, {**meta, "kind": "Booster"}
    wrapper = next((c.__name__ for c in type(model).__mro__ if c.__name__ in WRAPPERS), None)
    if wrapper is None:
        raise ConfigError(f"The XGBoost model {class_path(model)} is of an unknown kind.")
    with tempfile.TemporaryDirectory(prefix="plinth-xgb-") as folder:
        path = Path(folder) / FILE
        model.save_model(path)
        return {FILE: path.read_bytes()}, {**meta, "kind": wrapper}


def unpickles(meta: Mapping[str, Any]) -> bool:
    """Never: XGBoost reads its own format."""
    return False


def load(files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """A booster, or an empty wrapper of the stored class with the model read into it."""
    import xgboost

    kind = meta.get("kind")
    if kind == "Booster":
        booster = xgboost.Booster()
        booster.load_model(bytearray(files[FILE]))
        return booster
    if kind not in WRAPPERS:
        raise ConfigError(f"The stored XGBoost model is of an unknown kind {kind!r}.")
    model = getattr(xgboost, str(kind))()
    model.load_model(bytearray(files[FILE]))
    return model


def predict(model: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """The wrapper's ``predict``, or the booster's prediction on the data."""
    import xgboost

    if meta.get("kind") != "Booster":
        return model.predict(data)
    categorical = hasattr(data, "dtypes") and any(str(dtype) == "category" for dtype in data.dtypes)
    if categorical:
        return model.predict(xgboost.DMatrix(data, enable_categorical=True))
    return model.inplace_predict(data)


def feature_names(model: Any) -> list[str] | None:
    """The booster's feature names (set when trained on a DataFrame)."""
    booster = model if derives_from(model, "xgboost", "Booster") else model.get_booster()
    names = booster.feature_names
    return list(names) if names else None

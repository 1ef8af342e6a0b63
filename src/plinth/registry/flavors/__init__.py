"""Model flavors: how each kind of model is saved, loaded and asked for predictions.

A flavor is a module with ``NAME``, ``matches(model)``, ``save(model) -> (files, meta)``,
``unpickles(meta)``, ``load(files, meta)`` and ``predict(model, data, meta)``. Detection looks
only at the names of the object's classes, so it never imports a library the object does not
come from (a scikit-learn model never imports torch or xgboost).

=========== ================================================== =============== ==========
flavor      objects                                            stored as       unpickles
=========== ================================================== =============== ==========
lightgbm    ``Booster``; ``LGBMClassifier``/``LGBMRegressor``   model text;     wrappers
                                                               + pickle        only
xgboost     ``Booster``; ``XGBClassifier``/``XGBRegressor`` ... UBJSON          never
pytorch     ``torch.nn.Module``; TorchScript modules            torch.save;     plain
                                                               TorchScript     modules
onnx        ``onnx.ModelProto``                                 ONNX bytes      never
sklearn     any scikit-learn estimator or pipeline              pickle          always
=========== ================================================== =============== ==========

Example:
    >>> from sklearn.linear_model import LinearRegression
    >>> detect(LinearRegression())
    'sklearn'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from plinth.errors import ConfigError

#: Flavors in detection order: library wrappers that subclass scikit-learn come first.
FLAVORS = ("lightgbm", "xgboost", "pytorch", "onnx", "sklearn")


def class_path(model: Any) -> str:
    """The ``module.QualifiedName`` of an object's class.

    Example:
        >>> class_path(1)
        'builtins.int'
    """
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def base_modules(model: Any) -> set[str]:
    """The top-level packages of the classes an object's class derives from.

    Example:
        >>> sorted(base_modules(1))
        ['builtins']
    """
    return {cls.__module__.split(".")[0] for cls in type(model).__mro__}


def derives_from(model: Any, module: str, name: str) -> bool:
    """Whether the object's class derives from a class ``name`` defined under ``module``.

    Example:
        >>> derives_from(True, "builtins", "int")
        True
    """
    return any(
        cls.__name__ == name and (cls.__module__ == module or cls.__module__.startswith(module))
        for cls in type(model).__mro__
    )


def get_flavor(name: str) -> ModuleType:
    """The flavor module called ``name``; raise :class:`ConfigError` for an unknown one.

    Example:
        >>> get_flavor("onnx").NAME
        'onnx'
    """
    if name not in FLAVORS:
        raise ConfigError(
            f"'{name}' is not a model flavor.", hint=f"Use one of: {', '.join(FLAVORS)}."
        )
    return importlib.import_module(f"plinth.registry.flavors.{name}")


def detect(model: Any) -> str:
    """The flavor of a model object, from its class names alone.

    Example:
        >>> detect(object())  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        plinth.errors.ConfigError: ...
    """
    for name in FLAVORS:
        if get_flavor(name).matches(model):
            return name
    raise ConfigError(
        f"Cannot tell which flavor a {class_path(model)} is.",
        hint=f"Register a model of a supported library ({', '.join(FLAVORS)}), or pass "
        "flavor=NAME when its class derives from one of them.",
    )

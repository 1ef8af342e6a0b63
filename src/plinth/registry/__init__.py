"""The model registry: versions with flavors, signatures and provenance; aliases; model cards.

``run.log_model(model, "delay", features="delay", example=frame[:5])`` registers a version
linked to the run, its training set, its feature service version and its code commit;
``ws.models`` loads, aliases, compares and documents versions. See ``docs/registry.md``.

Example:
    >>> parse_uri("delay@champion").alias
    'champion'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plinth.registry.records import AliasEvent, LoadedModel, ModelSummary, ModelVersionInfo
from plinth.registry.signature import ColumnSpec, Signature, TensorSpec, infer_signature
from plinth.registry.uri import ModelRef, parse_uri

if TYPE_CHECKING:
    from plinth.tracking.run import Run

__all__ = [
    "AliasEvent",
    "ColumnSpec",
    "LoadedModel",
    "ModelRef",
    "ModelSummary",
    "ModelVersionInfo",
    "Signature",
    "TensorSpec",
    "infer_signature",
    "log_model",
    "parse_uri",
]


def log_model(
    run: Run,
    model: Any,
    name: str,
    *,
    features: Any = None,
    signature: Any = "auto",
    example: Any = None,
    training_set: Any = None,
    metrics: Mapping[str, float] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    flavor: str | None = None,
) -> ModelVersionInfo | None:
    """Register ``model`` as the next version of ``name``, produced by ``run``.

    The version links to the run (its metrics and code commit), to ``training_set`` (by
    default the training set the run used) and to the ``features`` service version. Under
    distributed training only rank 0 registers; other ranks get ``None``. See
    :meth:`plinth.registry.service.Registry.register` for every option.

    Example:
        >>> # with ws.run("delay-model") as run:
        >>> #     run.use(training)
        >>> #     version = run.log_model(booster, "delay", features="delay", example=x[:5])
    """
    if not run.logs:
        return None
    return run.ws.models.register(
        model,
        name,
        run=run,
        features=features,
        signature=signature,
        example=example,
        training_set=training_set,
        metrics=metrics,
        description=description,
        tags=tags,
        flavor=flavor,
    )

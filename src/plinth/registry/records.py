"""Plain records the registry returns: models, versions, alias events and loaded models."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from plinth.catalog.models import ModelVersion
from plinth.registry.signature import Signature
from plinth.registry.uri import SCHEME


def json_ready(value: Any) -> Any:
    """A value ready for JSON: times as ISO 8601, NaN and infinities as ``None``.

    Example:
        >>> json_ready({"auc": float("nan"), "n": [1, 2.5]})
        {'auc': None, 'n': [1, 2.5]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def version_node_id(name: str, version: int) -> str:
    """The lineage id of a model version: ``name/version``.

    Example:
        >>> version_node_id("delay", 3)
        'delay/3'
    """
    return f"{name}/{version}"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version: where it is stored, what it takes, where it came from.

    Example:
        >>> # info = ws.models.get("delay@champion"); info.version, info.training_set_id
    """

    name: str
    version: int
    flavor: str
    manifest_digest: str
    files: dict[str, str]
    signature: Signature | None
    example_digest: str | None
    run_id: str | None
    training_set_id: str | None
    feature_service: str | None
    feature_service_version: int | None
    code_commit: str | None
    metrics: dict[str, float]
    details: dict[str, Any]
    description: str | None
    created_at: datetime
    created_by: str
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """The version's URI, ``models:/name/version``."""
        return f"{SCHEME}{self.name}/{self.version}"

    @property
    def lineage_id(self) -> str:
        """The version's lineage node id (kind ``model_version``), ``name/version``."""
        return version_node_id(self.name, self.version)

    @property
    def tags(self) -> dict[str, str]:
        """The tags given at registration."""
        return dict(self.details.get("tags") or {})

    @classmethod
    def of(cls, row: ModelVersion, aliases: tuple[str, ...] = ()) -> ModelVersionInfo:
        """Build from a catalog row."""
        return cls(
            name=row.model_name,
            version=row.version,
            flavor=row.flavor,
            manifest_digest=row.manifest_digest,
            files=dict(row.files),
            signature=Signature.from_dict(row.signature) if row.signature else None,
            example_digest=row.example_digest,
            run_id=row.run_id,
            training_set_id=row.training_set_id,
            feature_service=row.feature_service,
            feature_service_version=row.feature_service_version,
            code_commit=row.code_commit,
            metrics=dict(row.metrics or {}),
            details=dict(row.details or {}),
            description=row.description,
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=aliases,
        )

    def to_dict(self) -> dict[str, Any]:
        """The version as JSON-ready data (its URI included).

        Example:
            >>> # json.dumps(ws.models.get("delay:3").to_dict())
        """
        data = asdict(self)
        data["signature"] = self.signature.to_dict() if self.signature else None
        data["aliases"] = list(self.aliases)
        data["uri"] = self.uri
        return json_ready(data)


@dataclass(frozen=True)
class ModelSummary:
    """A registered model as ``list()`` shows it: its newest version and its aliases."""

    name: str
    description: str | None
    created_at: datetime
    created_by: str
    version_count: int
    latest_version: int | None
    latest_at: datetime | None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-ready data."""
        return json_ready(asdict(self))


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias: ``set`` (new), ``move`` (from ``previous_version``) or
    ``remove``."""

    model: str
    alias: str
    action: str
    version: int | None
    previous_version: int | None
    reason: str | None
    at: datetime
    by: str

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return json_ready(asdict(self))


@dataclass
class LoadedModel:
    """A model version loaded into memory: the native object and a checked ``predict``.

    ``raw`` is the library's own object (a LightGBM ``Booster``, a scikit-learn estimator,
    a ``torch.nn.Module``, an ONNX Runtime session ...). ``name`` and ``version`` are
    ``None`` for a model loaded from a folder the catalog does not know.

    Example:
        >>> # model = ws.models.load("delay@champion"); model.predict(frame)
    """

    name: str | None
    version: int | None
    flavor: str
    signature: Signature | None
    raw: Any
    manifest_digest: str
    meta: dict[str, Any]

    def prepare(self, data: Any) -> Any:
        """Check ``data`` against the signature and return it in the model's input order.

        Raises :class:`~plinth.errors.SchemaMismatchError` naming a missing, extra or
        mistyped column. Without a signature the data is passed on as it is (tables as
        pandas DataFrames).
        """
        from plinth.registry.signature import to_frame

        if self.signature is not None:
            return self.signature.prepare(data)
        if hasattr(data, "shape") or isinstance(data, list | tuple):
            return data
        return to_frame(data)

    def predict(self, data: Any, *, validate: bool = True) -> Any:
        """Predict on ``data`` (a DataFrame, Arrow table, dict of columns, list of rows or
        array), checked against the signature first unless ``validate=False``.

        Example:
            >>> # scores = ws.models.load("delay@champion").predict(frame)
        """
        from plinth.registry.flavors import get_flavor

        prepared = self.prepare(data) if validate else data
        return get_flavor(self.flavor).predict(self.raw, prepared, self.meta)

    def predict_proba(self, data: Any, *, validate: bool = True) -> Any:
        """Class probabilities, for models that have ``predict_proba`` (classifiers).

        Example:
            >>> # ws.models.load("delay:2").predict_proba(frame)[:, 1]
        """
        from plinth.errors import ConfigError
        from plinth.registry.flavors import get_flavor

        if not hasattr(self.raw, "predict_proba"):
            raise ConfigError(
                f"The {self.flavor} model {self.label} has no predict_proba.",
                hint="Use predict(); a booster or network returns scores from predict().",
            )
        prepared = self.prepare(data) if validate else data
        flavor = get_flavor(self.flavor)
        if hasattr(flavor, "predict_proba"):
            return flavor.predict_proba(self.raw, prepared, self.meta)
        return self.raw.predict_proba(prepared)

    @property
    def label(self) -> str:
        """``name:version``, or the manifest's digest for a model from a folder."""
        if self.name is None:
            return f"sha256:{self.manifest_digest[:12]}"
        return f"{self.name}:{self.version}"

    def __repr__(self) -> str:
        return f"LoadedModel({self.label!r}, flavor={self.flavor!r})"

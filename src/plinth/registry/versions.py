"""Registering a model version: flavor, signature, provenance, stored files, catalog row.

Provenance is gathered before anything is written: the run (its metrics and code commit),
the training set (given, or the one the run used, found through lineage), the feature service
version, and a summary of the training data (rows, missing values per column, time range).
The files are stored content-addressed first; the catalog row and its lineage edges
(``run -> model_version`` "produced", ``training_set -> model_version`` "trained") are then
written in one transaction. Concurrent registrations of the same model get consecutive
version numbers (a clash on the unique version is retried).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth._core.clock import utcnow
from plinth.catalog import audit
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import (
    FeatureDefinition,
    LineageEdge,
    ModelVersion,
    RegisteredModel,
    TrainingSet,
)
from plinth.errors import ConfigError, ConflictError, NotFoundError, PlinthError
from plinth.registry import store
from plinth.registry.flavors import class_path, detect, get_flavor
from plinth.registry.records import ModelVersionInfo, version_node_id
from plinth.registry.signature import Signature, describe_data, infer_signature, to_frame
from plinth.registry.uri import check_name

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

#: A feature missing in more than this fraction of training rows is named as a limitation.
MISSING_WARN = 0.2
#: Rows of the training set used to infer the output part of a signature.
PROBE_ROWS = 5
_RETRIES = 8


@dataclass(frozen=True)
class RunFacts:
    """What a version takes from its run: id, last metric values, code commit, git state."""

    id: str | None
    metrics: dict[str, float]
    commit: str | None
    git: dict[str, Any] | None


def run_ref(run: Any) -> str | None:
    """The id of the run a version links to (``None`` for none); a run handle's buffered
    metrics are flushed first, so the version takes its last values.

    Example:
        >>> run_ref("run_01J")
        'run_01J'
    """
    if run is None:
        return None
    run_id = run if isinstance(run, str) else getattr(run, "id", None)
    if not isinstance(run_id, str):
        raise ConfigError(
            f"Cannot link a model version to a {type(run).__name__}.",
            hint="Pass a run (ws.run(...)) or a run id.",
        )
    if not isinstance(run, str):
        run.flush()
    return run_id


def _run_facts(ws: Workspace, run: Any) -> RunFacts:
    run_id = run_ref(run)
    if run_id is None:
        return RunFacts(None, {}, None, None)
    detail = ws.runs.get(run_id)
    metrics = {k: v for k, v in detail.metrics.items() if not math.isnan(v)}
    git = (detail.environment or {}).get("git") or None
    return RunFacts(detail.id, metrics, (git or {}).get("commit"), git)


def _run_training_set(ws: Workspace, run_id: str) -> str | None:
    with ws.catalog.session() as session:
        found = session.scalars(
            select(LineageEdge.source_id)
            .where(
                LineageEdge.target_kind == "run",
                LineageEdge.target_id == run_id,
                LineageEdge.source_kind == "training_set",
                LineageEdge.relation == "input_of",
            )
            .order_by(LineageEdge.id)
        ).all()
    if len(found) > 1:
        raise ConfigError(
            f"Run '{run_id}' used {len(found)} training sets ({', '.join(found)}), so the "
            "model's training set is ambiguous.",
            hint="Pass training_set=... to name the one the model was trained on.",
        )
    return found[0] if found else None


def _training_set(
    ws: Workspace, training_set: Any, run_id: str | None
) -> tuple[str | None, pa.Table | None]:
    if training_set is None:
        found = _run_training_set(ws, run_id) if run_id else None
        if found is None:
            return None, None
        return found, ws.features.training_set(found).table
    key = training_set_ref(training_set)  # a ConfigError for anything but a set or its id
    if hasattr(training_set, "table"):
        return key, training_set.table
    with ws.catalog.session() as session:
        if session.get(TrainingSet, key) is None:
            raise NotFoundError(
                f"No training set '{key}' is in the catalog.",
                hint="Build one with ws.features.historical(spine, service).",
            )
    return key, ws.features.training_set(str(key)).table


def with_training_signature(packaged: Package, training_set: Any) -> Package:
    """``packaged`` with its ``"auto"`` signature inferred from ``training_set`` (a training
    set with its data, as ``ws.features.historical`` returns), as registering it would.

    A client calls this before uploading, so the server need not load the model to infer
    the output part. Anything else (no training set, a training set id) is left as is.

    Example:
        >>> # training = ws.features.historical(spine, "svc")
        >>> # packaged = with_training_signature(package(model), training)
    """
    if packaged.signature != "auto" or not hasattr(training_set, "table"):
        return packaged
    names = packaged.feature_names or list(getattr(training_set, "features", None) or [])
    module = get_flavor(packaged.flavor)
    found = _table_signature(module, packaged.predictor, packaged.meta, training_set.table, names)
    return replace(packaged, signature=found)


def training_set_ref(training_set: Any) -> str | None:
    """The id of a model's training set (``None`` for none): a training set's own, or the
    id given (``ts_...`` or ``training_set:ts_...``).

    Example:
        >>> training_set_ref("training_set:ts_01")
        'ts_01'
    """
    if training_set is None:
        return None
    if hasattr(training_set, "table") and hasattr(training_set, "id"):
        if training_set.id is None:
            raise ConfigError(
                "The training set was built with record=False, so the model cannot be "
                "linked to it.",
                hint="Build it with ws.features.historical(..., record=True).",
            )
        return str(training_set.id)
    if isinstance(training_set, str):
        return training_set.removeprefix("training_set:")
    raise ConfigError(
        f"Cannot use a {type(training_set).__name__} as a model's training set.",
        hint="Pass a training set (ws.features.historical(...)) or its id 'ts_...'.",
    )


def feature_ref(features: Any) -> tuple[str, str | None] | None:
    """What names a model's feature service: its name, and the digest of its definition
    when given as a :class:`~plinth.FeatureService` (the exact form applied), else ``None``.

    Example:
        >>> feature_ref("delay")
        ('delay', None)
    """
    from plinth.features.definitions import FeatureService, spec_hash

    if features is None:
        return None
    if isinstance(features, FeatureService):
        return features.name, spec_hash(features)
    if isinstance(features, str):
        return features, None
    raise ConfigError(
        f"Cannot use a {type(features).__name__} as a model's features.",
        hint="Pass a FeatureService or the name of an applied one.",
    )


def _feature_service(
    ws: Workspace, ref: tuple[str, str | None] | None
) -> tuple[str | None, int | None]:
    if ref is None:
        return None, None
    name, digest = ref
    query = select(FeatureDefinition.version).where(
        FeatureDefinition.kind == "service", FeatureDefinition.name == name
    )
    if digest is not None:
        query = query.where(FeatureDefinition.spec_hash == digest)
    with ws.catalog.session() as session:
        version = session.scalar(query.order_by(FeatureDefinition.version.desc()).limit(1))
    if version is None:
        raise NotFoundError(
            f"Feature service '{name}' "
            + ("in this form has not been applied." if digest else "has not been applied."),
            hint="Apply it first (ws.features.apply([...]) or 'plinth features apply').",
        )
    return name, int(version)


def _feature_names(flavor: Any, model: Any) -> list[str] | None:
    names = flavor.feature_names(model) if hasattr(flavor, "feature_names") else None
    return [str(n) for n in names] if names else None


def _probe_output(flavor: Any, model: Any, meta: Mapping[str, Any], inputs: Any) -> Any:
    """The model's output on ``inputs`` (``model`` is what the flavor predicts with)."""
    out = flavor.predict(model, inputs, meta)
    if type(out).__module__.startswith("torch"):
        out = out.detach().cpu().numpy()
    return out


def _given_signature(
    signature: Any, flavor: Any, runtime: Any, meta: Mapping[str, Any], example: Any
) -> Signature | str | None:
    """The signature known without the training data: given, inferred from ``example``, or
    ``"auto"`` when it is to be inferred from the training set (see :func:`_table_signature`).
    """
    if signature is None or signature is False:
        return None
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature)
    if signature != "auto":
        raise ConfigError(
            f"signature={signature!r} is not understood.",
            hint="Pass 'auto' (the default), None, a Signature, or its to_dict() form.",
        )
    if example is None:
        return "auto"
    inputs = Signature(describe_data(example))
    prepared = inputs.prepare(example)
    try:
        output = _probe_output(flavor, runtime, meta, prepared)
    except PlinthError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"The model could not predict on the input example: {type(exc).__name__}: {exc}.",
            hint="Pass an example of exactly what the model takes, or signature=None.",
        ) from exc
    return infer_signature(example, output)


def _table_signature(
    flavor: Any,
    runtime: Callable[[], Any] | None,
    meta: Mapping[str, Any],
    table: pa.Table | None,
    names: list[str] | None,
) -> Signature | None:
    """The signature inferred from the training set's columns the model was fitted on
    (``names``), with the output of a prediction on a few rows; ``runtime()`` gives what
    the flavor predicts with (None: the inputs only)."""
    if table is None:
        return None
    if not names or any(n not in table.column_names for n in names):
        return None
    sample = table.select(names)
    inputs = Signature(describe_data(sample))
    if runtime is None:
        return inputs
    try:
        output = _probe_output(flavor, runtime(), meta, inputs.prepare(sample.slice(0, PROBE_ROWS)))
        return Signature(inputs.inputs, describe_data(output, output=True))
    except Exception:  # the columns were a guess; keep the inputs without the output
        return inputs


def training_summary(table: pa.Table) -> dict[str, Any]:
    """Rows, missing values per column and the time range of each timestamp column.

    Example:
        >>> import pyarrow as pa
        >>> training_summary(pa.table({"x": [1.0, None]}))["columns"]["x"]["null_fraction"]
        0.5
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = table.num_rows
    columns: dict[str, Any] = {}
    time_range: dict[str, list[str | None]] = {}
    for name in table.column_names:
        column = table.column(name)
        nulls = column.null_count
        if pa.types.is_floating(column.type):
            nulls += int(pc.sum(pc.is_nan(column)).as_py() or 0)
        columns[name] = {
            "type": str(column.type),
            "nulls": nulls,
            "null_fraction": round(nulls / rows, 6) if rows else 0.0,
        }
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            bounds = pc.min_max(column).as_py()
            time_range[name] = [
                None if v is None else v.isoformat() for v in (bounds["min"], bounds["max"])
            ]
    return {"rows": rows, "columns": columns, "time_range": time_range}


def _insert(
    ws: Workspace, name: str, fields: dict[str, Any], actor: str | None = None
) -> ModelVersionInfo:
    user = actor or ws.settings.user
    for attempt in range(_RETRIES):
        try:
            with ws.catalog.session() as session:
                exists = session.scalar(
                    select(RegisteredModel.id).where(RegisteredModel.name == name)
                )
                if exists is None:
                    session.add(
                        RegisteredModel(
                            name=name, description=None, created_at=utcnow(), created_by=user
                        )
                    )
                    session.flush()
                newest = session.scalar(
                    select(func.max(ModelVersion.version)).where(ModelVersion.model_name == name)
                )
                row = ModelVersion(
                    model_name=name,
                    version=(newest or 0) + 1,
                    created_at=utcnow(),
                    created_by=user,
                    **fields,
                )
                session.add(row)
                session.flush()
                target = Node("model_version", version_node_id(name, row.version))
                if row.run_id:
                    add_edge(session, Node("run", row.run_id), target, "produced")
                if row.training_set_id:
                    add_edge(session, Node("training_set", row.training_set_id), target, "trained")
                audit.record(
                    session,
                    actor=user,
                    action="model.register",
                    resource=f"model:{name}:{row.version}",
                    details={
                        "flavor": row.flavor,
                        "manifest": row.manifest_digest,
                        "run_id": row.run_id,
                        "training_set_id": row.training_set_id,
                    },
                )
                info = ModelVersionInfo.of(row)
            return info
        except SqlIntegrityError as exc:
            if attempt == _RETRIES - 1:
                raise ConflictError(
                    f"Could not register a new version of model '{name}': other processes "
                    "kept registering versions at the same moment.",
                    hint="Try again.",
                ) from exc
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Package:
    """A model made ready to register, before anything is stored: the flavor's files and
    metadata, the serialized input example, the signature (``"auto"`` while it is still to
    be inferred from the training set), and the column names the model was fitted on.

    ``runtime`` gives what the flavor predicts with: the object in memory when packaged in
    this process, or one loaded from ``files``. ``trusted`` is False for a package that came
    over the network: the server never loads (unpickles) a client's files, so a signature
    it infers from the training set keeps the inputs only (the client infers the whole
    signature itself when it holds the training set, see :func:`with_training_signature`).
    """

    flavor: str
    files: dict[str, bytes]
    meta: dict[str, Any]
    example: tuple[bytes, str] | None
    signature: Signature | str | None
    feature_names: list[str] | None
    runtime: Callable[[], Any] | None = None
    trusted: bool = True

    def predictor(self) -> Any:
        """What the flavor predicts with: the packaged object, else the stored files loaded.

        Example:
            >>> # package(model, signature=None).predictor().predict(rows)
        """
        if self.runtime is not None:
            return self.runtime()
        module = get_flavor(self.flavor)
        native = module.load(self.files, self.meta)
        if hasattr(module, "runtime"):
            return module.runtime(native, self.files, self.meta)
        return native


def package(
    model: Any, *, signature: Any = "auto", example: Any = None, flavor: str | None = None
) -> Package:
    """Package ``model`` as a registry version is stored: its flavor's files and metadata,
    the input example and the signature inferred from it (everything that needs the model
    in memory; a client does this before uploading the files).

    Example:
        >>> from sklearn.linear_model import LinearRegression
        >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
        >>> package(model, signature=None).flavor
        'sklearn'
    """
    flavor_name = flavor or detect(model)
    module = get_flavor(flavor_name)
    if not module.matches(model):
        raise ConfigError(
            f"A {class_path(model)} is not a {flavor_name} model.",
            hint="Leave flavor out to detect it from the object.",
        )
    if type(example).__module__.startswith("torch"):
        example = example.detach().cpu().numpy()
    elif isinstance(example, Mapping | list):
        example = to_frame(example)
    files, meta = module.save(model)
    runtime = module.runtime(model, files, meta) if hasattr(module, "runtime") else model
    return Package(
        flavor_name,
        dict(files),
        dict(meta),
        store.example_bytes(example),
        _given_signature(signature, module, runtime, meta, example),
        _feature_names(module, model),
        lambda: runtime,
    )


def register(
    ws: Workspace,
    model: Any,
    name: str,
    *,
    run: Any = None,
    features: Any = None,
    signature: Any = "auto",
    example: Any = None,
    training_set: Any = None,
    metrics: Mapping[str, float] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    flavor: str | None = None,
) -> ModelVersionInfo:
    """Store ``model`` as the next version of ``name`` (see :meth:`Registry.register`).

    Example:
        >>> # register(ws, booster, "delay", run=run, features="delay", example=frame[:5])
    """
    check_name(name)
    packaged = package(model, signature=signature, example=example, flavor=flavor)
    facts = _run_facts(ws, run)
    training = _training_set(ws, training_set, facts.id)
    service = _feature_service(ws, feature_ref(features))
    return _register(ws, name, packaged, facts, training, service, metrics, description, tags)


def register_package(
    ws: Workspace,
    name: str,
    packaged: Package,
    *,
    run_id: str | None = None,
    features: tuple[str, str | None] | None = None,
    training_set: str | None = None,
    metrics: Mapping[str, float] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> ModelVersionInfo:
    """Register a model packaged elsewhere (by :func:`package`, on a client) as the next
    version of ``name``: the same provenance, signature, storage and catalog row as
    :func:`register`, recorded as ``actor`` (default: the workspace user).

    Example:
        >>> # register_package(ws, "delay", package(model), run_id="run_01J...", actor="ana")
    """
    check_name(name)
    facts = _run_facts(ws, run_id)
    training = _training_set(ws, training_set, facts.id)
    service = _feature_service(ws, features)
    return _register(
        ws, name, packaged, facts, training, service, metrics, description, tags, actor
    )


def _register(
    ws: Workspace,
    name: str,
    packaged: Package,
    facts: RunFacts,
    training: tuple[str | None, pa.Table | None],
    service: tuple[str | None, int | None],
    metrics: Mapping[str, float] | None,
    description: str | None,
    tags: Mapping[str, Any] | None,
    actor: str | None = None,
) -> ModelVersionInfo:
    training_set_id, table = training
    ts_features = None
    spine_tables: list[str] = []
    if training_set_id is not None:
        with ws.catalog.session() as session:
            record = session.get(TrainingSet, training_set_id)
            ts_features = list(record.features)
            if (record.spine or {}).get("table"):
                spine_tables.append(str(record.spine["table"]))
    sig = packaged.signature
    if sig == "auto":
        module = get_flavor(packaged.flavor)
        names = packaged.feature_names or ts_features
        runtime = packaged.predictor if packaged.trusted else None
        sig = _table_signature(module, runtime, packaged.meta, table, names)
    assert not isinstance(sig, str)
    stored = store.save(
        ws,
        packaged.flavor,
        packaged.files,
        packaged.meta,
        signature=sig.to_dict() if sig else None,
        example=packaged.example,
    )
    explicit = {str(k): float(v) for k, v in (metrics or {}).items()}
    details: dict[str, Any] = {
        "meta": packaged.meta,
        "tags": {str(k): str(v) for k, v in (tags or {}).items()},
        "explicit_metrics": sorted(explicit),
    }
    if facts.git:
        details["git"] = facts.git
    if table is not None:
        summary = training_summary(table)
        # The time range of a column holding personal data would name two people's values.
        from plinth.governance.pii import pii_columns

        ranges = list(summary["time_range"])
        hidden = pii_columns(ws, ranges, tables=spine_tables) if ranges else {}
        summary["time_range"] = {k: v for k, v in summary["time_range"].items() if k not in hidden}
        details["training_data"] = summary
    if stored.manifest.get("example"):
        details["example"] = stored.manifest["example"]
    return _insert(
        ws,
        name,
        {
            "flavor": packaged.flavor,
            "manifest_digest": stored.manifest_digest,
            "files": stored.files,
            "signature": sig.to_dict() if sig else None,
            "example_digest": stored.example_digest,
            "run_id": facts.id,
            "training_set_id": training_set_id,
            "feature_service": service[0],
            "feature_service_version": service[1],
            "code_commit": facts.commit,
            "metrics": {**facts.metrics, **explicit},
            "details": details,
            "description": description,
        },
        actor,
    )

"""The model registry of a workspace (``ws.models``): register, look up, load, alias, compare
and document model versions.

Loaded models are cached in memory per (name, version, manifest digest), so a serving process
that loads ``delay@champion`` again pays one catalog look-up (to resolve the alias) and no
artifact reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth.catalog.models import ModelAlias, ModelVersion, RegisteredModel
from plinth.errors import ConflictError, ModelNotFoundError
from plinth.registry import aliases as alias_ops
from plinth.registry import store
from plinth.registry.records import AliasEvent, LoadedModel, ModelSummary, ModelVersionInfo
from plinth.registry.uri import ModelRef, check_name, parse_uri

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.registry.card import ModelCard
    from plinth.registry.diff import ModelDiff
    from plinth.workspace import Workspace

#: Loaded models kept in memory per registry (least recently used beyond this are dropped).
CACHE_SIZE = 16


class Registry:
    """Model versions, aliases, loading and model cards of one workspace.

    Example:
        >>> import tempfile, plinth
        >>> from sklearn.linear_model import LinearRegression
        >>> ws = plinth.Workspace(tempfile.mkdtemp())
        >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
        >>> ws.models.register(model, "line", signature=None).uri
        'models:/line/1'
        >>> round(float(ws.models.load("line").predict([[2.0]])[0]), 6)
        4.0
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._cache: OrderedDict[tuple[str, int, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    # -- registering ------------------------------------------------------------------------

    def register(
        self,
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
        """Store ``model`` as the next version of the registered model ``name``.

        ``run`` (a run or its id) links the version to the run, its metrics and its code
        commit; ``training_set`` defaults to the training set the run used. ``features`` is a
        :class:`~plinth.FeatureService` or the name of an applied one. ``signature="auto"``
        infers the inputs from ``example`` (or from the training set's columns the model
        was fitted on) and the output from a prediction; pass ``None`` for no signature.
        ``metrics`` are added to (and override) the run's last metric values; ``tags`` are
        kept with the version (see the model card for the tags it reads). ``flavor`` forces
        a flavor instead of detecting it.

        In remote mode (``PLINTH_URL`` set) the version is registered on the server, as
        ``client.register_model`` registers it, so a training script needs no change.

        Example:
            >>> # ws.models.register(booster, "delay", training_set="ts_01J...", features="delay")
        """
        from plinth.registry.versions import register

        if self.ws.settings.url:
            from plinth.client.remote import RemoteClient

            with RemoteClient(self.ws.settings.url, self.ws.settings.token or None) as client:
                return client.register_model(
                    model, name, run=run, features=features, signature=signature,
                    example=example, training_set=training_set, metrics=metrics,
                    description=description, tags=tags, flavor=flavor,
                )  # fmt: skip
        return register(
            self.ws,
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

    # -- looking up -------------------------------------------------------------------------

    def _row(self, session: Session, ref: ModelRef) -> ModelVersion:
        if ref.version is not None:
            return alias_ops.require_version(session, ref.name, ref.version)
        if ref.alias is not None:
            version = alias_ops.alias_version(session, ref.name, ref.alias)
            return alias_ops.require_version(session, ref.name, version)
        row = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.model_name == ref.name)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        )
        if row is None:
            alias_ops.require_model(session, ref.name)
            raise ModelNotFoundError(
                f"Model '{ref.name}' has no versions yet.",
                hint="Register one with run.log_model(...) or ws.models.register(...).",
            )
        return row

    def _info(self, session: Session, row: ModelVersion) -> ModelVersionInfo:
        held = tuple(
            alias
            for alias, version in alias_ops.aliases_of(session, row.model_name).items()
            if version == row.version
        )
        return ModelVersionInfo.of(row, held)

    def resolve(self, uri: str) -> tuple[str, int]:
        """The (name, version) a URI points at now.

        Example:
            >>> # ws.models.resolve("models:/delay@champion")
            >>> # ('delay', 3)
        """
        with self.ws.catalog.session() as session:
            row = self._row(session, parse_uri(uri))
            return row.model_name, row.version

    def get(self, uri: str) -> ModelVersionInfo:
        """Everything recorded about the version a URI points at.

        Raises :class:`~plinth.errors.ModelNotFoundError` for an unknown model, version or
        alias, and :class:`~plinth.errors.ConfigError` for a malformed URI.

        Example:
            >>> # ws.models.get("delay@champion").training_set_id
        """
        with self.ws.catalog.session() as session:
            return self._info(session, self._row(session, parse_uri(uri)))

    def list(self) -> list[ModelSummary]:
        """Every registered model with its newest version and its aliases, by name.

        Example:
            >>> # [m.name for m in ws.models.list()]
        """
        with self.ws.catalog.session() as session:
            models = session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
            stats = {
                name: (count, newest, at)
                for name, count, newest, at in session.execute(
                    select(
                        ModelVersion.model_name,
                        func.count(),
                        func.max(ModelVersion.version),
                        func.max(ModelVersion.created_at),
                    ).group_by(ModelVersion.model_name)
                )
            }
            held: dict[str, dict[str, int]] = {}
            for name, alias, version in session.execute(
                select(ModelAlias.model_name, ModelAlias.alias, ModelAlias.version).order_by(
                    ModelAlias.model_name, ModelAlias.alias
                )
            ):
                held.setdefault(name, {})[alias] = version
        out = []
        for model in models:
            count, newest, at = stats.get(model.name, (0, None, None))
            if at is not None and at.tzinfo is None:
                from plinth._core.clock import as_utc

                at = as_utc(at)
            out.append(
                ModelSummary(
                    model.name, model.description, model.created_at, model.created_by,
                    int(count), newest, at, held.get(model.name, {}),
                )
            )  # fmt: skip
        return out

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of a model, oldest first.

        Example:
            >>> # [v.version for v in ws.models.versions("delay")]
        """
        with self.ws.catalog.session() as session:
            alias_ops.require_model(session, name)
            held = alias_ops.aliases_of(session, name)
            rows = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.model_name == name)
                .order_by(ModelVersion.version)
            ).all()
            return [
                ModelVersionInfo.of(row, tuple(a for a, v in held.items() if v == row.version))
                for row in rows
            ]

    def example(self, uri: str) -> Any:
        """The input example stored with a version (a DataFrame or array), or ``None``.

        Example:
            >>> # ws.models.example("delay:3").head()
        """
        info = self.get(uri)
        name = info.details.get("example")
        if not info.example_digest or not name:
            return None
        return store.read_example(name, self.ws.artifacts.get_bytes(info.example_digest))

    # -- loading ----------------------------------------------------------------------------

    def load(self, uri: str) -> LoadedModel:
        """Load the version a URI points at, verified against the catalog, cached in memory.

        Every stored byte is checked against the digests the catalog recorded before the
        model is built, so a tampered artifact raises :class:`~plinth.errors.IntegrityError`
        and is never unpickled.

        Example:
            >>> # model = ws.models.load("models:/delay@champion"); model.predict(frame)
        """
        info = self.get(uri)
        key = (info.name, info.version, info.manifest_digest)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        manifest, files = store.fetch(self.ws, info.manifest_digest, info.files)
        loaded = LoadedModel(
            info.name,
            info.version,
            manifest["flavor"],
            info.signature,
            store.load_native(manifest, files),
            info.manifest_digest,
            dict(manifest["meta"]),
        )
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return loaded

    def load_path(self, path: str | Path) -> LoadedModel:
        """Load a version exported to a folder (by :meth:`export`, maybe in another workspace).

        The files must hash to the manifest's digests. A pickle-based version
        (scikit-learn, LightGBM wrappers, pickled torch modules) loads only when this
        workspace's catalog holds its manifest's digest; otherwise
        :class:`~plinth.errors.IntegrityError` is raised and nothing is unpickled.

        Example:
            >>> # ws.models.load_path("exports/delay-3").predict(frame)
        """
        from plinth.registry.signature import Signature

        def trusted(digest: str) -> bool:
            return self._by_manifest(digest) is not None

        digest, manifest, native = store.load_folder(path, trusted)
        known = self._by_manifest(digest)
        signature = manifest.get("signature")
        return LoadedModel(
            known[0] if known else None,
            known[1] if known else None,
            manifest["flavor"],
            Signature.from_dict(signature) if signature else None,
            native,
            digest,
            dict(manifest["meta"]),
        )

    def _by_manifest(self, digest: str) -> tuple[str, int] | None:
        with self.ws.catalog.session() as session:
            found = session.execute(
                select(ModelVersion.model_name, ModelVersion.version)
                .where(ModelVersion.manifest_digest == digest)
                .order_by(ModelVersion.id)
                .limit(1)
            ).first()
        return (found[0], int(found[1])) if found else None

    def export(self, uri: str, folder: str | Path) -> Path:
        """Write a version's manifest and files to a folder, for :meth:`load_path` elsewhere.

        Example:
            >>> # ws.models.export("delay@champion", "exports/delay")
        """
        info = self.get(uri)
        return store.export(self.ws, info.manifest_digest, info.files, Path(folder))

    # -- aliases ----------------------------------------------------------------------------

    def _alias_change(self, change: Any) -> Any:
        for attempt in range(3):
            try:
                with self.ws.catalog.session() as session:
                    return change(session)
            except SqlIntegrityError as exc:
                if attempt == 2:
                    raise ConflictError(
                        "The alias was changed by another process at the same moment.",
                        hint="Check 'plinth models alias history' and try again.",
                    ) from exc
        raise AssertionError("unreachable")

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        reason: str | None = None,
        *,
        actor: str | None = None,
    ) -> AliasEvent | None:
        """Point ``alias`` at ``version`` of model ``name`` (moving it if it is set).

        Returns the recorded event, or ``None`` when the alias already pointed there.
        Raises :class:`~plinth.errors.ModelNotFoundError` for an unknown model or version.
        ``actor`` is who the history and the audit chain name (default: the workspace user;
        a server passes its authenticated caller).

        Example:
            >>> # ws.models.set_alias("delay", "champion", 3, reason="AUC 0.74 > 0.72")
        """
        check_name(name)
        user = actor or self.ws.settings.user
        return self._alias_change(
            lambda s: alias_ops.set_alias(s, name, alias, int(version), by=user, reason=reason)
        )

    def remove_alias(
        self, name: str, alias: str, reason: str | None = None, *, actor: str | None = None
    ) -> AliasEvent:
        """Remove an alias of model ``name``; the version it held stays in the history.

        Example:
            >>> # ws.models.remove_alias("delay", "challenger", reason="experiment over")
        """
        check_name(name)
        user = actor or self.ws.settings.user
        return self._alias_change(
            lambda s: alias_ops.remove_alias(s, name, alias, by=user, reason=reason)
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every change of the aliases of ``name`` (or of one alias), oldest first.

        Example:
            >>> # [(e.action, e.version, e.previous_version) for e in
            >>> #  ws.models.alias_history("delay", "champion")]
        """
        with self.ws.catalog.session() as session:
            return alias_ops.history(session, name, alias)

    # -- comparing and documenting ----------------------------------------------------------

    def diff(self, uri_a: str, uri_b: str) -> ModelDiff:
        """Two versions side by side: attributes, parameters, metrics, signature, training
        data versions and features.

        Example:
            >>> # [row.key for row in ws.models.diff("delay:2", "delay:3").rows if row.differs]
        """
        from plinth.registry.diff import diff

        return diff(self.ws, self.get(uri_a), self.get(uri_b))

    def card(self, uri: str) -> ModelCard:
        """The model card of a version (Markdown and JSON), with EU AI Act Annex IV fields.

        Example:
            >>> # print(ws.models.card("delay@champion").markdown())
        """
        from plinth.registry.card import build_card

        return build_card(self.ws, self.get(uri))

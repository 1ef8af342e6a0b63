"""The workspace: resolved settings plus the catalog, storage, artifact store and lake."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth._core.settings import ResolvedSettings, Settings, load_settings

if TYPE_CHECKING:
    from plinth.catalog import Catalog
    from plinth.client.runs import RemoteRun
    from plinth.features.service import Features
    from plinth.governance.crypto import Cipher
    from plinth.lake import Lake
    from plinth.pipelines.service import Pipelines
    from plinth.quality.service import Quality
    from plinth.registry.service import Registry
    from plinth.serving.deployments import Deployments
    from plinth.storage import ArtifactStore, Storage
    from plinth.tracking import Run
    from plinth.tracking.service import Runs


class Workspace:
    """One Plinth workspace: everything is opened lazily, on first use.

    Settings come from the ``home`` argument, ``PLINTH_*`` variables, ``plinth.toml`` and
    defaults, in that order. Opening the catalog applies migrations; opening the lake reconciles
    ingests a crashed process left pending.

    Example:
        >>> import tempfile
        >>> ws = Workspace(tempfile.mkdtemp())
        >>> ws.lake.tables()
        []
        >>> ws.close()
    """

    def __init__(self, home: str | Path | None = None, *, settings: Settings | None = None) -> None:
        if settings is not None:
            self.resolved = ResolvedSettings(settings, {}, None)
        else:
            self.resolved = load_settings(home=home)

    @property
    def settings(self) -> Settings:
        """The workspace's resolved settings."""
        return self.resolved.settings

    @property
    def home(self) -> Path:
        """The workspace folder."""
        return self.settings.home

    @cached_property
    def catalog(self) -> Catalog:
        """The catalog database, migrated to the newest schema."""
        from plinth.catalog import Catalog

        return Catalog(self.settings.catalog_url)

    @cached_property
    def storage(self) -> Storage:
        """The storage backend under ``PLINTH_STORAGE_URL``."""
        from plinth.storage import open_storage

        return open_storage(self.settings.storage_root)

    @cached_property
    def cipher(self) -> Cipher | None:
        """The encryption key's cipher (``None`` without a key), read once for every store."""
        from plinth.governance.crypto import load_cipher

        return load_cipher(self.settings)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed artifact store (encrypted at rest when a key is configured)."""
        from plinth.storage import ArtifactStore

        return ArtifactStore(self.storage, cipher=self.cipher)

    @cached_property
    def lake(self) -> Lake:
        """The versioned data lake; pending ingests of crashed processes are reconciled here.

        The quality service is attached on open, so every ingest is checked against its
        table's contract and every version profiled.
        """
        from plinth.lake import Lake
        from plinth.quality.service import attach

        lake = Lake(self.catalog, self.storage, self.settings.user, self.cipher)
        self.__dict__["lake"] = lake
        lake.reconcile()
        self.__dict__["quality"] = attach(self)
        if self.settings.openlineage_url:
            from plinth.governance.openlineage import attach as emit_openlineage

            emit_openlineage(self)
        return lake

    @property
    def quality(self) -> Quality:
        """Data contracts, checks and quarantine (see :mod:`plinth.quality`)."""
        if "quality" not in self.__dict__:
            _ = self.lake
        return self.__dict__["quality"]

    @cached_property
    def features(self) -> Features:
        """The feature store: definitions, training sets, materialization, online reads."""
        from plinth.features.service import Features

        return Features(self)

    def run(
        self,
        experiment: str,
        params: dict[str, Any] | None = None,
        *,
        tags: dict[str, Any] | None = None,
        parent: str | None = None,
        capture: bool = True,
    ) -> Run | RemoteRun:
        """Start a tracked run (or join the launcher's run under ``plinth train``).

        With ``PLINTH_URL`` set the run is recorded on that server, through the client (a
        :class:`~plinth.client.RemoteRun` with the same logging methods); otherwise in this
        workspace's catalog.

        Example:
            >>> import tempfile
            >>> ws = Workspace(tempfile.mkdtemp())
            >>> with ws.run("demo", params={"lr": 0.1}, capture=False) as run:
            ...     run.log_metric("loss", 0.5)
            >>> ws.runs.get(run.id).params["lr"]
            '0.1'
        """
        if self.settings.url:
            from plinth.client.runs import open_run

            return open_run(
                self.settings, experiment, params, tags=tags, parent=parent, capture=capture
            )
        from plinth.tracking.run import run

        return run(self, experiment, params, tags=tags, parent=parent, capture=capture)

    @cached_property
    def runs(self) -> Runs:
        """Queries over tracked runs: list, show, compare, metric history, plots."""
        from plinth.tracking.service import Runs

        return Runs(self)

    @cached_property
    def models(self) -> Registry:
        """The model registry: versions, aliases, loading, model cards."""
        from plinth.registry.service import Registry

        return Registry(self)

    @cached_property
    def pipelines(self) -> Pipelines:
        """Pipeline runs and their steps, as recorded in the catalog."""
        from plinth.pipelines.service import Pipelines

        return Pipelines(self)

    @cached_property
    def deployments(self) -> Deployments:
        """Deployments: the versions taking each model's traffic, weights, shadow, rollback."""
        from plinth.serving.deployments import Deployments

        return Deployments(self)

    def init(self) -> dict[str, Any]:
        """Create the workspace folder, the catalog schema and the storage root; idempotent.

        Example:
            >>> import tempfile
            >>> Workspace(tempfile.mkdtemp()).init()["catalog"].startswith("sqlite")
            True
        """
        from plinth._core.urls import redact_url

        self.home.mkdir(parents=True, exist_ok=True)
        catalog = self.catalog
        self.storage.check_writable()
        return {
            "home": str(self.home),
            "catalog": redact_url(catalog.url),
            "storage": self.storage.url,
        }

    def close(self) -> None:
        """Release the catalog connections."""
        if "catalog" in self.__dict__:
            self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

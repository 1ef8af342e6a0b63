"""What a running inference server holds: route tables, loading, hot reload, the log.

At start the server is live but not ready; every model is loaded off the event loop and only
when all of them (and their online feature stores) are loaded does readiness turn true. A
reload task then polls the catalog: when an alias a route names moves, or the model's
deployment gets a new revision, the new versions are loaded and warmed up in the background,
the route table is swapped in one step, and the versions no longer routed to finish their
queued requests before they are dropped. No request fails during a roll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, NotFoundError
from plinth.governance.access import Access, auth_status, require_auth_allowed
from plinth.registry.uri import parse_uri
from plinth.serving.batcher import Inflight
from plinth.serving.deployments import DeploymentSpec
from plinth.serving.metrics import ServingMetrics
from plinth.serving.options import ServeOptions
from plinth.serving.prediction_log import PredictionLog
from plinth.serving.routing import RouteEntry, RouteTable
from plinth.serving.served import ServedVersion

if TYPE_CHECKING:
    from plinth.workspace import Workspace

log = logging.getLogger(__name__)

Loader = Callable[["Workspace", Any, ServeOptions], ServedVersion]


class ModelNotServedError(NotFoundError):
    """The server does not serve that model or version."""


@dataclass(frozen=True)
class Target:
    """A model the server was asked to serve: its name and the URI given for it."""

    model: str
    uri: str


def targets_of(uris: Sequence[str]) -> list[Target]:
    """Parse ``delay@champion,other:3`` style URIs; one per model.

    Example:
        >>> [t.model for t in targets_of(["delay@champion", "eta:3"])]
        ['delay', 'eta']
    """
    found: dict[str, Target] = {}
    for uri in uris:
        for part in (p.strip() for p in uri.split(",")):
            if not part:
                continue
            ref = parse_uri(part)
            if ref.name in found:
                raise ConfigError(
                    f"Model '{ref.name}' is named twice ({found[ref.name].uri}, {part}).",
                    hint="Serve one URI per model; split traffic between versions with "
                    "'plinth deploy URI --canary URI'.",
                )
            found[ref.name] = Target(ref.name, part)
    if not found:
        raise ConfigError("No model to serve.", hint="Name one, e.g. plinth serve delay@champion.")
    return list(found.values())


class ServingState:
    """The inference server's state: tables per model, metrics, prediction log, readiness.

    Example:
        >>> # state = ServingState(ws, targets_of(["delay@champion"]), ServeOptions())
        >>> # await state.start(); state.ready
    """

    def __init__(
        self,
        ws: Workspace,
        targets: Sequence[Target],
        options: ServeOptions,
        *,
        loader: Loader | None = None,
    ) -> None:
        settings = ws.settings
        require_auth_allowed(settings, settings.catalog_url)
        self.ws = ws
        #: Authentication, authorization and rate limits; ``None`` when both are off, so the
        #: open path costs one attribute check.
        self.access = Access(ws) if settings.auth or settings.rate_limit > 0 else None
        self.targets = list(targets)
        self.options = options
        self.loader: Loader = loader or ServedVersion.load
        self.tables: dict[str, RouteTable] = {}
        self.metrics = ServingMetrics()
        self.inflight = Inflight()
        self.plog = (
            PredictionLog(ws, max_rows=options.log_queue_rows, flush_s=options.log_flush_s)
            if options.log_predictions
            else None
        )
        self.ready = False
        self.load_error: str | None = None
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start loading every model in the background; readiness turns true when done."""
        status = auth_status(self.ws.settings)
        if self.access is None or not self.access.enabled:
            log.warning(status)
        else:
            log.info(status)
        if self.plog is not None:
            self.plog.start()
        if not self.options.background_load:
            await self._load_all()
            if self.load_error:
                raise ConfigError(f"Loading the models failed: {self.load_error}")
            return
        self._tasks.append(asyncio.get_running_loop().create_task(self._load_all()))

    async def _load_all(self) -> None:
        try:
            for target in self.targets:
                table = await asyncio.to_thread(self._build, target, {})
                self._install(target.model, table)
        except Exception as exc:  # readiness stays false and says why
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("loading failed: %s", self.load_error)
            return
        _settle_heap()
        self.ready = True
        log.info("ready: %s", ", ".join(self.tables))
        if self.options.reload_interval_s > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._reload_loop()))

    async def stop(self) -> None:
        """Stop reloading, answer every queued request, then flush the prediction log."""
        self._stopping = True
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for table in self.tables.values():
            for served in table.versions().values():
                await served.close()
        if self.plog is not None:
            await asyncio.to_thread(self.plog.close)

    # -- building route tables ---------------------------------------------------------------

    def spec_of(self, target: Target) -> tuple[DeploymentSpec, int | None]:
        """The routes a model serves: its catalog deployment if it has one, else the URI."""
        found = self.ws.deployments.find(target.model)
        if found is not None:
            return found.spec, found.revision
        return DeploymentSpec.of(target.uri), None

    def _build(self, target: Target, loaded: dict[int, ServedVersion]) -> RouteTable:
        spec, revision = self.spec_of(target)
        entries = []
        for i, route in enumerate(spec.routes):
            served = self._version(route.uri, loaded)
            entries.append(
                RouteEntry(route.uri, route.weight, served, "primary" if i == 0 else "canary")
            )
        shadow = self._version(spec.shadow, loaded) if spec.shadow else None
        return RouteTable(target.model, entries, shadow, spec.shadow, revision)

    def _version(self, uri: str, loaded: dict[int, ServedVersion]) -> ServedVersion:
        info = self.ws.models.get(uri)
        served = loaded.get(info.version)
        if served is None:
            served = self.loader(self.ws, info, self.options)
            served.batcher.inflight = self.inflight
            served.observe = self.metrics.batch
            loaded[info.version] = served
        return served

    def _install(self, model: str, table: RouteTable) -> list[ServedVersion]:
        old = self.tables.get(model)
        self.tables[model] = table
        keep = {id(v) for v in table.versions().values()}
        for served in table.versions().values():
            self.metrics.set_ready(model, served.version, True)
        if old is None:
            return []
        retired = [v for v in old.versions().values() if id(v) not in keep]
        for served in retired:
            self.metrics.set_ready(model, served.version, False)
        return retired

    # -- hot reload --------------------------------------------------------------------------

    def _change_token(self) -> tuple[Any, ...]:
        """One cheap query whose answer changes whenever an alias moves, a version is
        registered or a deployment is revised (then the full check runs)."""
        from sqlalchemy import text

        with self.ws.catalog.session() as session:
            row = session.execute(
                text(
                    "SELECT (SELECT max(id) FROM model_alias_events), "
                    "(SELECT max(id) FROM model_versions), "
                    "(SELECT max(id) FROM deployment_revisions)"
                )
            ).one()
            return tuple(row)

    async def _reload_loop(self) -> None:
        token = self._change_token()
        while not self._stopping:
            await asyncio.sleep(self.options.reload_interval_s)
            try:
                # On a thread: the catalog may be busy with a writer (the prediction log
                # commits there), and the event loop must never wait on it.
                latest = await asyncio.to_thread(self._change_token)
                if latest == token:
                    continue
                await self.reload()
                token = latest
            except Exception as exc:  # a bad catalog state must not take serving down
                log.warning("reload skipped: %s", exc)

    async def reload(self) -> list[str]:
        """Roll every model whose aliases or deployment changed; return what changed.

        Example:
            >>> # await state.reload()
        """
        changed = []
        for target in self.targets:
            current = self.tables.get(target.model)
            if current is None:
                continue
            wanted = await asyncio.to_thread(self._wanted, target)
            if wanted == current.key_of_uris():
                continue
            held = dict(current.versions())
            table = await asyncio.to_thread(self._build, target, held)
            retired = self._install(target.model, table)
            for served in retired:
                await served.close()
            _settle_heap()
            changed.append(f"{target.model}: {table.describe()}")
            log.info("rolled %s", changed[-1])
        return changed

    def _wanted(self, target: Target) -> tuple[Any, ...]:
        spec, revision = self.spec_of(target)
        versions = tuple((self.ws.models.resolve(r.uri)[1], r.weight) for r in spec.routes)
        shadow = self.ws.models.resolve(spec.shadow)[1] if spec.shadow else None
        return (versions, shadow, revision)

    # -- lookups -----------------------------------------------------------------------------

    def table(self, model: str) -> RouteTable:
        """The route table of a served model; raise :class:`ModelNotServedError` otherwise."""
        table = self.tables.get(model)
        if table is None:
            served = ", ".join(t.model for t in self.targets)
            if any(t.model == model for t in self.targets):
                raise ModelNotServedError(
                    f"Model '{model}' is still loading.", hint="Wait for /v2/health/ready."
                )
            raise ModelNotServedError(
                f"This server does not serve model '{model}'.", hint=f"It serves: {served}."
            )
        return table

    def version(self, model: str, version: int) -> ServedVersion:
        """One served version of a model, routed or shadow."""
        found = self.table(model).versions().get(version)
        if found is None:
            held = ", ".join(str(v) for v in sorted(self.table(model).versions()))
            raise ModelNotServedError(
                f"Version {version} of model '{model}' is not served here.",
                hint=f"Served versions: {held}.",
            )
        return found


def _settle_heap() -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    A server process holds a large, long-lived heap (pandas, Arrow, SQLAlchemy, the models);
    a full collection walks all of it and stalls every request for hundreds of
    milliseconds. Freezing the heap after loading means collections only walk what
    requests allocate; the larger first threshold makes them rarer still.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)

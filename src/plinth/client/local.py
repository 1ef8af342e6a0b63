"""The client over a local workspace: the catalog, lake and registry of this machine."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from plinth.client.base import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Identity,
    ModelDetail,
    Page,
    PlinthClient,
    RunHandle,
)
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.catalog.audit import AuditRecord, Verification
    from plinth.governance.lineage import LineageGraph
    from plinth.lake.records import TableInfo, VersionInfo
    from plinth.monitoring.alerts import AlertInfo
    from plinth.pipelines.service import PipelineRunSummary
    from plinth.registry import AliasEvent, ModelSummary, ModelVersionInfo
    from plinth.serving.deployments import DeploymentInfo
    from plinth.tracking.history import MetricHistory
    from plinth.tracking.run import Run
    from plinth.tracking.service import RunDetail, RunSummary
    from plinth.workspace import Workspace

__all__ = ["LocalClient", "LocalRun", "check_limit", "experiment_filter"]


def check_limit(limit: int) -> int:
    """``limit`` if it is a usable page size (1 to 500); raise ConfigError otherwise.

    Example:
        >>> check_limit(50)
        50
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(
            f"A page size of {limit!r} is not between 1 and {MAX_LIMIT}.",
            hint=f"Give a limit from 1 to {MAX_LIMIT}.",
        )
    return limit


def experiment_filter(filter: str | None, experiment: str | None) -> str | None:
    """``filter`` narrowed to one experiment (joined with ``and``).

    Example:
        >>> experiment_filter("metrics.auc > 0.7", "delay")
        "metrics.auc > 0.7 and experiment = 'delay'"
    """
    if experiment is None:
        return filter
    quoted = "'" + experiment.replace("'", "''") + "'"
    clause = f"experiment = {quoted}"
    return f"{filter} and {clause}" if filter and filter.strip() else clause


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ConfigError(
            f"'{cursor}' is not a page cursor of this list.",
            hint="Pass back the next_cursor of the previous page.",
        )
    return int(cursor)


class LocalRun(RunHandle):
    """A run recorded straight into the local catalog (a wrapped :class:`plinth.tracking.Run`).

    Example:
        >>> # with LocalClient(ws).start_run("demo") as run: run.log_metric("loss", 0.5)
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self.id = run.id
        self.experiment = run.experiment

    @property
    def status(self) -> str:
        """``running`` until :meth:`end`, then the status recorded."""
        return self._run.status

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one metric point (see :meth:`plinth.tracking.Run.log_metric`).

        Example:
            >>> # run.log_metric("loss", 0.25, step=10)
        """
        self._run.log_metric(key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at one step.

        Example:
            >>> # run.log_metrics({"loss": 0.25, "auc": 0.71}, step=10)
        """
        self._run.log_metrics(metrics, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters.

        Example:
            >>> # run.log_params({"lr": 0.1})
        """
        self._run.log_params(params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags.

        Example:
            >>> # run.set_tags({"team": "ops"})
        """
        self._run.set_tags(tags)

    def flush(self) -> None:
        """Write queued metric points now.

        Example:
            >>> # run.flush()
        """
        self._run.flush()

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush and record the final status.

        Example:
            >>> # run.end("failed", error="diverged")
        """
        self._run.end(status, error)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run.__exit__(kind, exc, tb)


class LocalClient(PlinthClient):
    """The client over a workspace on this machine.

    Example:
        >>> import tempfile
        >>> from plinth.workspace import Workspace
        >>> client = LocalClient(Workspace(tempfile.mkdtemp()))
        >>> client.models()
        []
        >>> client.close()
    """

    def __init__(self, ws: Workspace, *, own: bool = False) -> None:
        self.ws = ws
        self._own = own

    def close(self) -> None:
        """Close the workspace when this client opened it.

        Example:
            >>> # client.close()
        """
        if self._own:
            self.ws.close()

    # -- lake ------------------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        """Every lake table, by name.

        Example:
            >>> # [t.name for t in client.tables()]
        """
        return self.ws.lake.tables()

    def table(self, name: str) -> TableInfo:
        """One table with its latest version.

        Example:
            >>> # client.table("flights").latest.version
        """
        return self.ws.lake.table(name)

    def table_versions(self, name: str) -> list[VersionInfo]:
        """Every version of a table, oldest first.

        Example:
            >>> # [v.version for v in client.table_versions("flights")]
        """
        return self.ws.lake.history(name)

    # -- runs ------------------------------------------------------------------------------

    def runs(
        self,
        filter: str | None = None,
        sort: str | None = None,
        experiment: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[RunSummary]:
        """One page of runs.

        Example:
            >>> # page = client.runs("metrics.auc > 0.7", "metrics.auc desc", limit=10)
        """
        check_limit(limit)
        offset = _offset(cursor)
        found = self.ws.runs.list(experiment_filter(filter, experiment), sort, limit + 1, offset)
        more = len(found) > limit
        return Page(found[:limit], str(offset + limit) if more else None)

    def run(self, run_id: str) -> RunDetail:
        """Everything recorded about one run.

        Example:
            >>> # client.run("run_01J...").status
        """
        return self.ws.runs.get(run_id)

    def metric_history(self, run_id: str, key: str, max_points: int = 500) -> MetricHistory:
        """One metric series, downsampled to at most ``max_points``.

        Example:
            >>> # client.metric_history(run_id, "loss").values[-1]
        """
        return self.ws.runs.history(run_id, key, max_points)

    def start_run(
        self,
        experiment: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> LocalRun:
        """Start a run in the local catalog.

        Example:
            >>> # with client.start_run("demo", params={"lr": 0.1}) as run: ...
        """
        from plinth.tracking.run import start_run

        return LocalRun(start_run(self.ws, experiment, params=params, tags=tags, capture=False))

    # -- registry --------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        """Every registered model, by name.

        Example:
            >>> # [m.name for m in client.models()]
        """
        return self.ws.models.list()

    def model(self, name: str) -> ModelDetail:
        """One model with its versions.

        Example:
            >>> # client.model("delay").aliases
        """
        from plinth.registry.aliases import unknown_model

        versions = self.ws.models.versions(name)
        for summary in self.ws.models.list():
            if summary.name == name:
                return ModelDetail(summary, versions)
        raise unknown_model(name)

    def model_version(self, name: str, version: int | str) -> ModelVersionInfo:
        """One version of a model, by number or alias.

        Example:
            >>> # client.model_version("delay", "champion").version
        """
        text = str(version)
        return self.ws.models.get(f"{name}:{text}" if text.isdigit() else f"{name}@{text}")

    def set_alias(
        self, name: str, alias: str, version: int, reason: str | None = None
    ) -> AliasEvent | None:
        """Point an alias at a version.

        Example:
            >>> # client.set_alias("delay", "champion", 3, reason="AUC 0.74")
        """
        return self.ws.models.set_alias(name, alias, version, reason=reason)

    def remove_alias(self, name: str, alias: str) -> AliasEvent | None:
        """Remove an alias.

        Example:
            >>> # client.remove_alias("delay", "challenger")
        """
        return self.ws.models.remove_alias(name, alias)

    # -- pipelines, deployments, monitoring ------------------------------------------------

    def pipeline_runs(self, limit: int = 20) -> list[PipelineRunSummary]:
        """The most recent pipeline runs.

        Example:
            >>> # [r.status for r in client.pipeline_runs(5)]
        """
        return self.ws.pipelines.runs(limit=check_limit(limit))

    def deployments(self) -> list[DeploymentInfo]:
        """Every deployment.

        Example:
            >>> # [d.name for d in client.deployments()]
        """
        return self.ws.deployments.list()

    def alerts(self, state: str | None = None, model: str | None = None) -> list[AlertInfo]:
        """Alerts, newest first.

        Example:
            >>> # [a.message for a in client.alerts(state="firing")]
        """
        from plinth.monitoring.alerts import AlertManager

        return AlertManager(self.ws).alerts(state=state, model=model, limit=MAX_LIMIT)

    # -- governance ------------------------------------------------------------------------

    def audit(
        self,
        resource: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Audit events, newest first.

        Example:
            >>> # [e.action for e in client.audit("model:delay")]
        """
        from plinth.catalog.audit import events

        return events(
            self.ws, resource=resource, action=action, actor=actor, limit=check_limit(limit)
        )

    def audit_verify(self) -> Verification:
        """Check the audit chain.

        Example:
            >>> # client.audit_verify().ok
        """
        from plinth.catalog.audit import verify

        return verify(self.ws)

    def lineage(self, obj: str, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """The lineage of an object.

        Example:
            >>> # client.lineage("delay@champion").of_kind("table_version")
        """
        from plinth.governance.lineage import lineage

        return lineage(self.ws, obj, direction, depth)

    def whoami(self) -> Identity:
        """The workspace's own user, with its role.

        Example:
            >>> # client.whoami().role
        """
        from plinth.governance import roles
        from plinth.governance.access import local_principal

        principal = local_principal(self.ws)
        project = self.ws.settings.project
        role = principal.roles.get(project)
        permissions = sorted(roles.PERMISSIONS[role]) if role else []
        return Identity(principal.subject, dict(principal.roles), project, permissions)

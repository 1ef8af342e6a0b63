"""The client over a local workspace: the catalog, lake and registry of this machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from plinth.client.base import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AlertDetail,
    Identity,
    ModelDetail,
    Page,
    PlinthClient,
    RunHandle,
)
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from datetime import datetime

    from plinth.catalog.audit import AuditRecord, Verification
    from plinth.cost.accounting import CostReport
    from plinth.cost.budgets import BudgetStatus
    from plinth.cost.prices import PriceTable
    from plinth.cost.waste import WasteReport
    from plinth.features.definitions import Definition
    from plinth.features.registry import Change
    from plinth.features.service import FeatureViewInfo
    from plinth.governance.lineage import LineageGraph
    from plinth.governance.roles import RoleBindingInfo, RoleListing
    from plinth.governance.tokens import NewToken, TokenInfo
    from plinth.lake.records import TableInfo, VersionInfo
    from plinth.monitoring.alerts import AlertInfo
    from plinth.monitoring.service import WindowDrift
    from plinth.pipelines.service import PipelineRunDetail, PipelineRunSummary
    from plinth.quality.contracts import Contract
    from plinth.quality.observability import QualitySummary
    from plinth.quality.service import AppliedContract
    from plinth.registry import AliasEvent, ModelSummary, ModelVersionInfo
    from plinth.registry.card import ModelCard
    from plinth.registry.diff import ModelDiff
    from plinth.serving.deployments import DeploymentInfo, RevisionInfo
    from plinth.tracking.history import MetricHistory
    from plinth.tracking.run import Run
    from plinth.tracking.service import Comparison, RunDetail, RunSummary
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

    def log_artifact(self, source: Any, name: str | None = None) -> str:
        """Store a file, a folder or an object as an artifact (see
        :meth:`plinth.tracking.Run.log_artifact`).

        Example:
            >>> # run.log_artifact(Path("model.pkl")); run.log_artifact(b"...", "raw.bin")
        """
        self._check_open()
        if isinstance(source, bytearray | memoryview):
            source = bytes(source)
        return self._run.log_artifact(source, name)

    def use(self, source: Any) -> str:
        """Record an input of the run; return its lineage id.

        Example:
            >>> # run.use("flights@3")
        """
        self._check_open()
        return self._run.use(source)

    def _check_open(self) -> None:
        if self._run.status != "running":
            raise ConfigError(
                f"Run {self.id} has ended ({self._run.status}); nothing more can be logged to it.",
                hint="Start a new run with client.start_run(...).",
            )

    def log_model(self, model: Any, name: str, **options: Any) -> ModelVersionInfo | None:
        """Register a model version produced by this run (see
        :func:`plinth.registry.log_model`).

        Example:
            >>> # run.log_model(model, "delay", example=frame[:5])
        """
        return self._run.log_model(model, name, **options)

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

    def table_version(self, name: str, version: int | None = None) -> VersionInfo:
        """One version of a table, the latest by default.

        Example:
            >>> # client.table_version("flights", 0).row_count
        """
        return self.ws.lake.version(name, version)

    def table_quality(self, name: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """A table's quality results, newest first.

        Example:
            >>> # [r["status"] for r in client.table_quality("flights", 5)]
        """
        check_limit(limit)
        self.ws.lake.table(name)  # TableNotFoundError, as the server answers
        return self.ws.quality.results(name, limit=limit)

    def table_profile(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The column profile of a table version, computed and stored on first request.

        Example:
            >>> # client.table_profile("flights")["columns"]["delay"]["nulls"]
        """
        from plinth.quality.profiles import profile_version

        info = self.ws.lake.version(name, version)
        return profile_version(self.ws.lake, name, info.version)

    def table_summary(
        self, name: str, version: int | None = None, against: int | None = None
    ) -> QualitySummary:
        """Freshness, volume, schema changes and shifts of a table version.

        Example:
            >>> # [s.column for s in client.table_summary("flights").shifts[:3]]
        """
        from plinth.quality.observability import summarize

        return summarize(self.ws.lake, name, against=against, version=version)

    # -- features --------------------------------------------------------------------------

    def feature_views(self) -> list[FeatureViewInfo]:
        """Every applied feature view, by name.

        Example:
            >>> # [v.name for v in client.feature_views()]
        """
        return self.ws.features.view_infos()

    def feature_view(self, name: str) -> FeatureViewInfo:
        """One applied feature view with its version and watermark.

        Example:
            >>> # client.feature_view("weather").spec["features"]
        """
        return self.ws.features.view_info(name)

    def feature_definitions(self) -> list[tuple[str, Definition, int]]:
        """Every applied entity, view and service: ``(kind, definition, version)``.

        Example:
            >>> # [(kind, d.name) for kind, d, _ in client.feature_definitions()]
        """
        return self.ws.features.definitions()

    # -- definitions: data contracts and feature definitions -------------------------------

    def apply_contract(
        self, contract: Contract | str | Path, origin: str | None = None
    ) -> AppliedContract:
        """Validate a data contract and record it if it changed.

        Example:
            >>> # client.apply_contract(Path("contracts/flights.yaml")).version
        """
        return self.ws.quality.apply(contract, origin)

    def contracts(self) -> list[AppliedContract]:
        """The latest contract of every table that has one.

        Example:
            >>> # [c.table for c in client.contracts()]
        """
        return self.ws.quality.contracts()

    def contract(self, table: str, version: int | None = None) -> AppliedContract:
        """A table's contract, the latest version by default.

        Example:
            >>> # client.contract("flights").contract.row_checks()
        """
        return self.ws.quality.require_contract(table, version)

    def apply_features(self, definitions: str | Path | Sequence[Any]) -> list[Change]:
        """Lint definitions (a Python file or the objects) and record what changed.

        Example:
            >>> # [c.status for c in client.apply_features("features.py")]
        """
        return self.ws.features.apply(definitions)

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

    def tag_run(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a run, open or ended.

        Example:
            >>> # client.tag_run(run_id, {"best": "true"})
        """
        from plinth.tracking.run import tag_run

        tag_run(self.ws, run_id, dict(tags))

    def compare_runs(self, run_ids: list[str]) -> Comparison:
        """Runs side by side.

        Example:
            >>> # client.compare_runs([a, b]).to_dict()["differs"]
        """
        return self.ws.runs.compare(run_ids)

    def plot_runs(
        self,
        run_ids: list[str],
        keys: list[str] | None = None,
        path: str | Path = "runs.html",
        max_points: int = 1000,
    ) -> Path:
        """Chart the runs' metric series to a file.

        Example:
            >>> # client.plot_runs([a, b], ["loss"], "loss.html")
        """
        return self.ws.runs.plot(run_ids, keys or None, path, max_points=max_points)

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

    def remove_alias(self, name: str, alias: str, reason: str | None = None) -> AliasEvent | None:
        """Remove an alias.

        Example:
            >>> # client.remove_alias("delay", "challenger", reason="retired")
        """
        return self.ws.models.remove_alias(name, alias, reason=reason)

    def model_card(self, name: str, version: int | None = None) -> ModelCard:
        """The model card of a version, the newest by default.

        Example:
            >>> # client.model_card("delay", 3).markdown()
        """
        return self.ws.models.card(f"{name}:{version}" if version is not None else name)

    def gate_decisions(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """The promotion-gate decisions of a model, newest first.

        Example:
            >>> # [d["passed"] for d in client.gate_decisions("delay")]
        """
        from plinth.registry.gates import decisions

        self.ws.models.versions(name)  # ModelNotFoundError, as the server answers
        return decisions(self.ws, name, version)

    # -- registry: registering, history, diff, export ---------------------------------------

    def register_model(
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
        """Register the next version of a model in the local registry.

        Example:
            >>> # client.register_model(model, "delay", run=run, example=frame[:5])
        """
        return self.ws.models.register(
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

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every change of a model's aliases, oldest first.

        Example:
            >>> # [(e.action, e.version) for e in client.alias_history("delay", "champion")]
        """
        return self.ws.models.alias_history(name, alias)

    def diff_models(self, uri_a: str, uri_b: str) -> ModelDiff:
        """Two versions side by side.

        Example:
            >>> # [r.key for r in client.diff_models("delay:1", "delay:2").rows if r.differs]
        """
        return self.ws.models.diff(uri_a, uri_b)

    def export_model(self, name: str, version: int | str, folder: str | Path) -> Path:
        """Copy a version's verified files and manifest to a folder.

        Example:
            >>> # client.export_model("delay", "champion", "exports/delay")
        """
        info = self.model_version(name, version)
        return self.ws.models.export(f"{info.name}:{info.version}", folder)

    # -- pipelines, deployments, monitoring ------------------------------------------------

    def pipeline_runs(
        self, limit: int = 20, pipeline: str | None = None
    ) -> list[PipelineRunSummary]:
        """The most recent pipeline runs.

        Example:
            >>> # [r.status for r in client.pipeline_runs(5)]
        """
        return self.ws.pipelines.runs(limit=check_limit(limit), pipeline=pipeline)

    def pipeline_run(self, run_id: str) -> PipelineRunDetail:
        """One pipeline run with its steps.

        Example:
            >>> # [s.status for s in client.pipeline_run("prun_01J...").steps]
        """
        return self.ws.pipelines.get(run_id)

    def pipeline_log(self, run_id: str, step: str) -> str:
        """A step's captured stdout and stderr, as text.

        Example:
            >>> # print(client.pipeline_log("prun_01J...", "train"))
        """
        return self.ws.pipelines.log(run_id, step)

    def deployments(self) -> list[DeploymentInfo]:
        """Every deployment.

        Example:
            >>> # [d.name for d in client.deployments()]
        """
        return self.ws.deployments.list()

    def deployment(self, name: str) -> DeploymentInfo:
        """One deployment.

        Example:
            >>> # client.deployment("delay").revision
        """
        return self.ws.deployments.get(name)

    def deployment_history(self, name: str) -> list[RevisionInfo]:
        """Every revision of a deployment, oldest first.

        Example:
            >>> # [r.action for r in client.deployment_history("delay")]
        """
        return self.ws.deployments.history(name)

    def deployment_stats(self, name: str) -> dict[str, Any]:
        """Serving figures of a deployment from its model's prediction log.

        Example:
            >>> # client.deployment_stats("delay")["latency_ms"]["p95"]
        """
        from plinth.monitoring.service import deployment_stats

        return deployment_stats(self.ws, name)

    def drift(self, model: str, window: str = "1d") -> list[WindowDrift]:
        """Drift of a model's prediction log by window.

        Example:
            >>> # [w.report.share_drifted for w in client.drift("delay@champion", "1d")]
        """
        from plinth.monitoring.service import log_drift

        return log_drift(self.ws, model, window=window)

    def alerts(self, state: str | None = None, model: str | None = None) -> list[AlertInfo]:
        """Alerts, newest first.

        Example:
            >>> # [a.message for a in client.alerts(state="firing")]
        """
        from plinth.monitoring.alerts import AlertManager

        return AlertManager(self.ws).alerts(state=state, model=model, limit=MAX_LIMIT)

    def alert(self, alert_id: int) -> AlertDetail:
        """One alert with its events.

        Example:
            >>> # [e.kind for e in client.alert(7).events]
        """
        from plinth.monitoring.alerts import AlertManager

        manager = AlertManager(self.ws)
        return AlertDetail(manager.get(alert_id), manager.history(alert_id))

    # -- cost ------------------------------------------------------------------------------

    def cost(
        self, by: str = "model", since: datetime | None = None, until: datetime | None = None
    ) -> CostReport:
        """Costs in a window, grouped ``by`` run, model, pipeline or deployment.

        Example:
            >>> # client.cost("run", since=parse_since("30d")).total_usd
        """
        from plinth.cost.accounting import cost_report

        return cost_report(self.ws, by, since, now=until)

    # -- administration and cost reports ----------------------------------------------------

    def tokens(self, include_revoked: bool = True) -> list[TokenInfo]:
        """Every API token's record, newest first.

        Example:
            >>> # [(t.id, t.status()) for t in client.tokens(include_revoked=False)]
        """
        from plinth.governance.tokens import list_tokens

        return list_tokens(self.ws, include_revoked=include_revoked)

    def token(self, token_id: str) -> TokenInfo:
        """One token's record.

        Example:
            >>> # client.token("tok_01J...").status()
        """
        from plinth.governance.tokens import get_token

        return get_token(self.ws, token_id)

    def create_token(
        self,
        name: str,
        *,
        owner: str | None = None,
        expires: str | None = "90d",
        role: str | None = None,
        project: str | None = None,
    ) -> NewToken:
        """Create a token for ``owner`` (the workspace's user by default).

        Example:
            >>> # client.create_token("ci", role="viewer", expires="30d").secret
        """
        from plinth.governance.tokens import create_token

        return create_token(self.ws, name, owner=owner, expires=expires, role=role, project=project)

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token and its own roles.

        Example:
            >>> # client.revoke_token("tok_01J...").status()
        """
        from plinth.governance.tokens import revoke_token

        return revoke_token(self.ws, token_id)

    def roles(self, project: str | None = None) -> RoleListing:
        """The role bindings and the implicit admin.

        Example:
            >>> # [(b.subject, b.role) for b in client.roles().bindings]
        """
        from plinth.governance.roles import role_listing

        return role_listing(self.ws, project=project)

    def grant_role(self, subject: str, role: str, project: str | None = None) -> RoleBindingInfo:
        """Give a subject a role in a project.

        Example:
            >>> # client.grant_role("ana", "deployer")
        """
        from plinth.governance.roles import grant

        return grant(self.ws, subject, role, project=project)

    def revoke_role(self, subject: str, project: str | None = None) -> RoleBindingInfo:
        """Take away a subject's role in a project.

        Example:
            >>> # client.revoke_role("ana")
        """
        from plinth.governance.roles import revoke

        return revoke(self.ws, subject, project=project)

    def waste(self, since: datetime | None = None, until: datetime | None = None) -> WasteReport:
        """Utilization of what runs and deployments requested.

        Example:
            >>> # client.waste(parse_since("30d")).wasted_usd
        """
        from plinth.cost.waste import waste_report

        return waste_report(self.ws, since, now=until)

    def prices(self) -> PriceTable:
        """The workspace's price table.

        Example:
            >>> # client.prices().cpu_core_hour
        """
        from plinth.cost.prices import prices_for

        return prices_for(self.ws.settings)

    def evaluate_budgets(self) -> list[BudgetStatus]:
        """Evaluate the budgets and their alerts.

        Example:
            >>> # [(b.project, b.share) for b in client.evaluate_budgets()]
        """
        from plinth.cost.budgets import evaluate_budgets

        return evaluate_budgets(self.ws)

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

"""The client interface both backends implement, and the records only the client adds.

A :class:`PlinthClient` answers the same questions whether it reads a local catalog
(:class:`~plinth.client.local.LocalClient`) or talks to a control-plane server
(:class:`~plinth.client.remote.RemoteClient`). Results are the plain records the services
already return (:class:`~plinth.tracking.service.RunSummary`,
:class:`~plinth.registry.ModelVersionInfo`, :class:`~plinth.monitoring.alerts.AlertInfo` ...),
rebuilt from JSON on the remote side, so code written against one backend runs on the other.
Errors are the same classes too: an unknown model is a
:class:`~plinth.errors.ModelNotFoundError` on both.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
    from plinth.monitoring.alerts import AlertEventInfo, AlertInfo
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
    from plinth.tracking.service import Comparison, RunDetail, RunSummary

__all__ = ["AlertDetail", "Identity", "ModelDetail", "Page", "PlinthClient", "RunHandle"]

T = TypeVar("T")

#: Page size of list operations unless told otherwise, and the most one page may hold.
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (``None`` at the end).

    Example:
        >>> page = Page([1, 2], next_cursor=None)
        >>> list(page), page.next_cursor
        ([1, 2], None)
    """

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Identity:
    """Who the client acts as: subject, role per project, the project, its permissions.

    Example:
        >>> Identity("ana", {"default": "viewer"}, "default", ["models:read"]).role
        'viewer'
    """

    subject: str
    roles: dict[str, str]
    project: str
    permissions: list[str] = field(default_factory=list)

    @property
    def role(self) -> str | None:
        """The role in the client's project, if any."""
        return self.roles.get(self.project)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "subject": self.subject,
            "roles": dict(self.roles),
            "project": self.project,
            "permissions": list(self.permissions),
        }


@dataclass(frozen=True)
class ModelDetail:
    """A registered model with every version, oldest first.

    Example:
        >>> # detail = client.model("delay"); detail.summary.aliases, [v.version for v in detail]
    """

    summary: ModelSummary
    versions: list[ModelVersionInfo]

    @property
    def name(self) -> str:
        """The model's name."""
        return self.summary.name

    @property
    def aliases(self) -> dict[str, int]:
        """Alias to version, as set now."""
        return dict(self.summary.aliases)

    def __iter__(self) -> Iterator[ModelVersionInfo]:
        return iter(self.versions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: the summary's fields plus ``versions``."""
        return {**self.summary.to_dict(), "versions": [v.to_dict() for v in self.versions]}


@dataclass(frozen=True)
class AlertDetail:
    """One alert with its history (fired, actions taken, resolved), oldest event first.

    Example:
        >>> # detail = client.alert(7); detail.alert.state, [e.kind for e in detail.events]
    """

    alert: AlertInfo
    events: list[AlertEventInfo]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: the alert's fields plus ``events``."""
        return {**self.alert.to_dict(), "events": [e.to_dict() for e in self.events]}


class RunHandle(abc.ABC):
    """A run being recorded: log metrics, parameters and tags, then end it.

    Use it as a context manager: leaving the block ends the run ``finished``, or ``failed``
    with the error when the block raises.

    Example:
        >>> # with client.start_run("demo", params={"lr": 0.1}) as run:
        >>> #     run.log_metrics({"loss": 0.5, "auc": 0.7}, step=1)
    """

    id: str
    experiment: str

    @abc.abstractmethod
    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one metric point; ``step`` defaults to the key's previous step plus one."""

    @abc.abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at one step (one past their highest step by default)."""

    @abc.abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (values are kept as text)."""

    @abc.abstractmethod
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values are kept as text)."""

    @abc.abstractmethod
    def log_artifact(self, source: Any, name: str | None = None) -> str:
        """Store a file (a ``Path``), a folder or an object (``bytes``, ``str``, a table, a
        dict...) as an artifact of the run; return its name."""

    @abc.abstractmethod
    def use(self, source: Any) -> str:
        """Record an input of the run (``table@N``, ``table``, ``training_set:<id>`` or a
        training set); return its lineage id."""

    @abc.abstractmethod
    def log_model(self, model: Any, name: str, **options: Any) -> ModelVersionInfo | None:
        """Register ``model`` as the next version of ``name``, produced by this run (the
        options of :func:`plinth.registry.log_model`); ``None`` on a rank other than 0."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Write every buffered metric point now."""

    @abc.abstractmethod
    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush and record the run's final status (``finished``, ``failed`` or ``killed``)."""

    @property
    @abc.abstractmethod
    def status(self) -> str:
        """``running`` until :meth:`end`, then the status recorded."""

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from plinth.tracking.run import exit_outcome

        status, summary = exit_outcome(kind, exc)
        self.end(status, error=summary)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, experiment={self.experiment!r})"


class PlinthClient(abc.ABC):
    """The operations remote mode supports, over a local catalog or a control-plane server.

    Get one with :func:`plinth.client.connect`, which picks the backend from ``PLINTH_URL``.

    Example:
        >>> # client = plinth.client.connect()
        >>> # [m.name for m in client.models()]
        >>> # client.set_alias("delay", "champion", 3, reason="AUC 0.74")
    """

    # -- lake ------------------------------------------------------------------------------

    @abc.abstractmethod
    def tables(self) -> list[TableInfo]:
        """Every lake table with its latest version, by name."""

    @abc.abstractmethod
    def table(self, name: str) -> TableInfo:
        """One table; :class:`~plinth.errors.TableNotFoundError` when unknown."""

    @abc.abstractmethod
    def table_versions(self, name: str) -> list[VersionInfo]:
        """Every version of a table, oldest first."""

    @abc.abstractmethod
    def table_version(self, name: str, version: int | None = None) -> VersionInfo:
        """One version of a table (the latest by default);
        :class:`~plinth.errors.VersionNotFoundError` when it has no such version."""

    @abc.abstractmethod
    def table_quality(self, name: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """A table's stored quality results (one per contract check run), newest first."""

    @abc.abstractmethod
    def table_profile(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The column profile of a table version (the latest by default)."""

    @abc.abstractmethod
    def table_summary(
        self, name: str, version: int | None = None, against: int | None = None
    ) -> QualitySummary:
        """What ``plinth quality`` reports on a table version (the latest by default):
        freshness, volume, schema changes, shifts against ``against`` (the previous version by
        default), recent events and lineage; anomalies are detected and recorded first."""

    # -- features --------------------------------------------------------------------------

    @abc.abstractmethod
    def feature_views(self) -> list[FeatureViewInfo]:
        """Every applied feature view (newest version, definition, watermark), by name."""

    @abc.abstractmethod
    def feature_view(self, name: str) -> FeatureViewInfo:
        """One applied feature view; :class:`~plinth.errors.NotFoundError` when unknown."""

    @abc.abstractmethod
    def feature_definitions(self) -> list[tuple[str, Definition, int]]:
        """Every applied entity, feature view and service at its newest version, as
        ``(kind, definition, version)``: entities, then views, then services, each by name."""

    # -- definitions: data contracts and feature definitions -------------------------------

    @abc.abstractmethod
    def apply_contract(
        self, contract: Contract | str | Path, origin: str | None = None
    ) -> AppliedContract:
        """Validate a data contract (a ``Contract``, YAML text or a ``.yaml`` file, checked on
        this machine first) against its table and record a new version if it changed; the
        stored profiles of the columns it marks as personal data are scrubbed.
        :class:`~plinth.errors.ContractError` for a bad contract."""

    @abc.abstractmethod
    def contracts(self) -> list[AppliedContract]:
        """The latest contract of every table that has one, by table name."""

    @abc.abstractmethod
    def contract(self, table: str, version: int | None = None) -> AppliedContract:
        """A table's contract (the latest version by default);
        :class:`~plinth.errors.NotFoundError` when it has none."""

    @abc.abstractmethod
    def apply_features(self, definitions: str | Path | Sequence[Any]) -> list[Change]:
        """Lint definitions (a Python file, loaded on this machine, or the objects) against
        the lake and record a new version of each one that changed;
        :class:`~plinth.errors.ConfigError` naming every problem."""

    # -- runs ------------------------------------------------------------------------------

    @abc.abstractmethod
    def runs(
        self,
        filter: str | None = None,
        sort: str | None = None,
        experiment: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[RunSummary]:
        """One page of runs matching ``filter`` (see :mod:`plinth.tracking.query`), newest
        first unless ``sort`` says otherwise; pass ``next_cursor`` back for the next page."""

    def iter_runs(
        self,
        filter: str | None = None,
        sort: str | None = None,
        experiment: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Iterator[RunSummary]:
        """Every matching run, fetched ``limit`` at a time.

        Example:
            >>> # ids = [r.id for r in client.iter_runs(experiment="delay", limit=100)]
        """
        cursor: str | None = None
        while True:
            page = self.runs(filter, sort, experiment, limit, cursor)
            yield from page.items
            if page.next_cursor is None or not page.items:
                return
            cursor = page.next_cursor

    @abc.abstractmethod
    def run(self, run_id: str) -> RunDetail:
        """Everything recorded about one run; :class:`~plinth.errors.RunNotFoundError`."""

    @abc.abstractmethod
    def metric_history(self, run_id: str, key: str, max_points: int = 500) -> MetricHistory:
        """One metric series of a run, downsampled to at most ``max_points``."""

    @abc.abstractmethod
    def tag_run(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a run, open or ended (a search marks its best trial this way)."""

    @abc.abstractmethod
    def compare_runs(self, run_ids: list[str]) -> Comparison:
        """Runs side by side: attributes, parameters and last metric values."""

    @abc.abstractmethod
    def plot_runs(
        self,
        run_ids: list[str],
        keys: list[str] | None = None,
        path: str | Path = "runs.html",
        max_points: int = 1000,
    ) -> Path:
        """Chart the runs' metric series to ``path`` (HTML with inline SVG, or PNG)."""

    @abc.abstractmethod
    def start_run(
        self,
        experiment: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Start a run and return its handle (a context manager)."""

    # -- registry --------------------------------------------------------------------------

    @abc.abstractmethod
    def models(self) -> list[ModelSummary]:
        """Every registered model with its newest version and aliases, by name."""

    @abc.abstractmethod
    def model(self, name: str) -> ModelDetail:
        """One model with its versions; :class:`~plinth.errors.ModelNotFoundError`."""

    @abc.abstractmethod
    def model_version(self, name: str, version: int | str) -> ModelVersionInfo:
        """One version (a number, or an alias such as ``champion``)."""

    @abc.abstractmethod
    def set_alias(
        self, name: str, alias: str, version: int, reason: str | None = None
    ) -> AliasEvent | None:
        """Point ``alias`` at ``version``; ``None`` when it already pointed there."""

    @abc.abstractmethod
    def remove_alias(self, name: str, alias: str, reason: str | None = None) -> AliasEvent | None:
        """Remove an alias; the version it held stays in the history."""

    @abc.abstractmethod
    def model_card(self, name: str, version: int | None = None) -> ModelCard:
        """The model card of a version (the newest by default)."""

    @abc.abstractmethod
    def gate_decisions(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """The promotion-gate decisions recorded for a model (or one version), newest first."""

    # -- registry: registering, history, diff, export (models through the server) ---------

    @abc.abstractmethod
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
        """Register ``model`` as the next version of ``name`` (the options of
        :meth:`plinth.registry.service.Registry.register`); remotely it is packaged here,
        its files uploaded, and the version recorded on the server."""

    @abc.abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every change of a model's aliases (or of one alias), oldest first."""

    @abc.abstractmethod
    def diff_models(self, uri_a: str, uri_b: str) -> ModelDiff:
        """Two versions (model URIs) side by side, as ``plinth models diff`` shows them."""

    @abc.abstractmethod
    def export_model(self, name: str, version: int | str, folder: str | Path) -> Path:
        """Write a version's files and ``manifest.json`` to ``folder`` (verified); return it."""

    # -- pipelines, deployments, monitoring ------------------------------------------------

    @abc.abstractmethod
    def pipeline_runs(
        self, limit: int = 20, pipeline: str | None = None
    ) -> list[PipelineRunSummary]:
        """The most recent pipeline runs, newest first, optionally of one pipeline."""

    @abc.abstractmethod
    def pipeline_run(self, run_id: str) -> PipelineRunDetail:
        """One pipeline run with its steps (an unambiguous start of its id works too)."""

    @abc.abstractmethod
    def pipeline_log(self, run_id: str, step: str) -> str:
        """A step's captured stdout and stderr (every attempt), ``""`` when it printed
        nothing; ``NotFoundError`` for an unknown run or step."""

    @abc.abstractmethod
    def deployments(self) -> list[DeploymentInfo]:
        """Every deployment, by name."""

    @abc.abstractmethod
    def deployment(self, name: str) -> DeploymentInfo:
        """One deployment; ``DeploymentNotFoundError`` when unknown."""

    @abc.abstractmethod
    def deployment_history(self, name: str) -> list[RevisionInfo]:
        """Every revision of a deployment, oldest first."""

    @abc.abstractmethod
    def deployment_stats(self, name: str) -> dict[str, Any]:
        """Requests, latency percentiles (ms), throughput and error rate of a deployment."""

    @abc.abstractmethod
    def drift(self, model: str, window: str = "1d") -> list[WindowDrift]:
        """Drift of a model's prediction log by window against its training set, oldest
        window first (``model`` is a URI: ``delay``, ``delay@champion``)."""

    @abc.abstractmethod
    def alerts(self, state: str | None = None, model: str | None = None) -> list[AlertInfo]:
        """Alerts, newest first, optionally in one state or for one model."""

    @abc.abstractmethod
    def alert(self, alert_id: int) -> AlertDetail:
        """One alert with its events; ``AlertNotFoundError`` when unknown."""

    # -- cost ------------------------------------------------------------------------------

    @abc.abstractmethod
    def cost(
        self, by: str = "model", since: datetime | None = None, until: datetime | None = None
    ) -> CostReport:
        """Costs from ``since`` (the beginning by default) to ``until`` (now by default),
        grouped ``by`` run, model, pipeline or deployment, priced with the catalog's owner's
        price table (the server's, remotely); ``ConfigError`` for an unknown grouping."""

    # -- governance ------------------------------------------------------------------------

    @abc.abstractmethod
    def audit(
        self,
        resource: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Audit events, newest first (``table:x`` also matches ``table:x@3``), optionally
        of one action or actor."""

    @abc.abstractmethod
    def audit_verify(self) -> Verification:
        """Check the audit chain's hashes."""

    @abc.abstractmethod
    def lineage(self, obj: str, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """The lineage of ``obj`` (``delay@champion``, ``flights@0``, ``run:run_...``)."""

    @abc.abstractmethod
    def whoami(self) -> Identity:
        """Who this client acts as, and what it may do."""

    # -- administration and cost reports ----------------------------------------------------

    @abc.abstractmethod
    def tokens(self, include_revoked: bool = True) -> list[TokenInfo]:
        """Every API token's record (never a secret), newest first."""

    @abc.abstractmethod
    def token(self, token_id: str) -> TokenInfo:
        """One token's record; :class:`~plinth.errors.NotFoundError` when unknown."""

    @abc.abstractmethod
    def create_token(
        self,
        name: str,
        *,
        owner: str | None = None,
        expires: str | None = "90d",
        role: str | None = None,
        project: str | None = None,
    ) -> NewToken:
        """Create a token acting for ``owner`` (the caller by default), with a role of its own
        in ``project`` when ``role`` is given; its secret is in the result, and only there."""

    @abc.abstractmethod
    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token and its own roles; revoking twice changes nothing."""

    @abc.abstractmethod
    def roles(self, project: str | None = None) -> RoleListing:
        """Every role binding (or one project's), and the implicit admin of an embedded
        catalog."""

    @abc.abstractmethod
    def grant_role(self, subject: str, role: str, project: str | None = None) -> RoleBindingInfo:
        """Give ``subject`` ``role`` in ``project`` (the catalog's project by default)."""

    @abc.abstractmethod
    def revoke_role(self, subject: str, project: str | None = None) -> RoleBindingInfo:
        """Take away ``subject``'s role in ``project``; ``NotFoundError`` when it has none."""

    @abc.abstractmethod
    def waste(self, since: datetime | None = None, until: datetime | None = None) -> WasteReport:
        """Utilization of what runs and deployments requested from ``since`` to ``until``."""

    @abc.abstractmethod
    def prices(self) -> PriceTable:
        """The price table costs are computed with (the server's, remotely)."""

    @abc.abstractmethod
    def evaluate_budgets(self) -> list[BudgetStatus]:
        """Month-to-date spend against each budget; fires or resolves the budget alerts."""

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections (the workspace's catalog, the HTTP pool)."""
        return None

    def __enter__(self) -> PlinthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

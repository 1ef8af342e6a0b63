"""The client over a control-plane server (``PLINTH_URL``), speaking its JSON API.

Every call is one or a few HTTP requests to ``/api/v1`` with ``Authorization: Bearer
<PLINTH_TOKEN>``. Reads (``GET``) are retried on connection errors and ``503`` answers with
a short backoff (honouring ``Retry-After``); writes are never retried, so nothing is applied
twice. Error answers (``{"error": {"type", "message", "hint"}}``) become the same
:class:`~plinth.errors.PlinthError` classes a local call raises: ``ModelNotFoundError`` for
an unknown model, :class:`~plinth.governance.access.Forbidden` for a role that does not
allow the call, :class:`~plinth.governance.access.Unauthenticated` for a bad token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from plinth.client import _decode as decode
from plinth.client._errors import ServerUnavailableError, error_class, raise_for
from plinth.client.base import DEFAULT_LIMIT, MAX_LIMIT, Identity, ModelDetail, Page, PlinthClient
from plinth.client.local import check_limit
from plinth.client.runs import RemoteRun
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from datetime import datetime

    import httpx

    from plinth.catalog.audit import AuditRecord, Verification
    from plinth.client.base import AlertDetail
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
    from plinth.tracking.service import Comparison, RunDetail, RunSummary

__all__ = ["API_PREFIX", "RemoteClient", "ServerUnavailableError", "error_class"]

API_PREFIX = "/api/v1"
#: Attempts of a read before giving up, and the first backoff in seconds (doubled each time).
RETRIES, BACKOFF_S = 4, 0.25


def _items(data: Any) -> list[Any]:
    return list(data["items"] if isinstance(data, dict) and "items" in data else data)


class RemoteClient(PlinthClient):
    """The client over a control-plane server.

    ``transport`` replaces the network (an ``httpx.MockTransport`` in tests, say).

    Example:
        >>> # client = RemoteClient("http://plinth.internal:8000", token="plt_...")
        >>> # client.whoami().role
        >>> # 'viewer'
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        from plinth import __version__ as version

        base = (url or "").strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(
                f"PLINTH_URL '{url}' is not an http(s) URL.",
                hint="Set it like http://plinth.internal:8000, or unset it to use the local "
                "catalog.",
            )
        if base.endswith(API_PREFIX):
            base = base[: -len(API_PREFIX)]
        self.url = base
        self.retries = max(1, retries)
        headers = {"User-Agent": f"plinth/{version}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RemoteClient({self.url!r})"  # never the token

    def close(self) -> None:
        """Close the connection pool.

        Example:
            >>> # client.close()
        """
        self._http.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"Cannot reach the Plinth server at {self.url}: {type(exc).__name__}: {exc}.",
            hint="Check PLINTH_URL and that the server is running ('plinth server').",
        )

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET with retries on connection errors and 503 answers."""
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        delay = BACKOFF_S
        for attempt in range(self.retries):
            last = attempt == self.retries - 1
            try:
                response = self._http.get(path, params=query)
            except httpx.TransportError as exc:
                if last:
                    raise self._unreachable(exc) from exc
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 503 and not last:
                after = response.headers.get("Retry-After", "")
                time.sleep(min(float(after), 10.0) if after.isdigit() else delay)
                delay *= 2
                continue
            raise_for(response)
            return response.json()
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        """A write: sent once, never retried."""
        import httpx

        # NaN and infinities are metric values a local run stores as they are: send them as
        # the JSON extensions NaN/Infinity (which the server's parser reads) rather than fail.
        content = None if body is None else json.dumps(body, allow_nan=True).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, body)

    def _upload(self, path: str, data: bytes, params: Mapping[str, Any] | None = None) -> Any:
        """A raw-bytes write (an artifact): sent once, never retried."""
        import httpx

        try:
            response = self._http.post(
                path,
                content=data,
                params=dict(params or {}),
                headers={"Content-Type": "application/octet-stream"},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise_for(response)
        return response.json() if response.content else None

    def _walk(
        self, path: str, params: Mapping[str, Any] | None = None, most: int | None = None
    ) -> Iterator[Any]:
        """Every item of a paginated list (at most ``most``), a page at a time."""
        query = dict(params or {})
        cursor: str | None = None
        seen = 0
        while True:
            size = MAX_LIMIT if most is None else min(MAX_LIMIT, most - seen)
            data = self._get(path, {**query, "limit": size, "cursor": cursor})
            items = _items(data)
            for item in items:
                yield item
                seen += 1
                if most is not None and seen >= most:
                    return
            cursor = data.get("next_cursor") if isinstance(data, dict) else None
            if cursor is None or not items:
                return

    @staticmethod
    def _part(text: str) -> str:
        return quote(str(text), safe="@:")

    # -- lake ------------------------------------------------------------------------------

    def tables(self) -> list[TableInfo]:
        """Every lake table, by name.

        Example:
            >>> # [t.name for t in client.tables()]
        """
        return [decode.table_of(t) for t in self._walk("/tables")]

    def table(self, name: str) -> TableInfo:
        """One table with its latest version.

        Example:
            >>> # client.table("flights").latest.version
        """
        return decode.table_of(self._get(f"/tables/{self._part(name)}"))

    def table_versions(self, name: str) -> list[VersionInfo]:
        """Every version of a table, oldest first.

        Example:
            >>> # [v.version for v in client.table_versions("flights")]
        """
        found = [decode.version_of(v) for v in self._walk(f"/tables/{self._part(name)}/versions")]
        return sorted(found, key=lambda v: v.version)

    def table_version(self, name: str, version: int | None = None) -> VersionInfo:
        """One version of a table, the latest by default.

        Example:
            >>> # client.table_version("flights", 0).row_count
        """
        from plinth.errors import VersionNotFoundError

        versions = self.table_versions(name)
        found = versions[-1:] if version is None else [v for v in versions if v.version == version]
        if not found:  # the lake's own message
            what = "version yet" if version is None else f"version {version}"
            raise VersionNotFoundError(
                f"Table '{name}' has no {what}.",
                hint=f"Run 'plinth table history {name}' to list its versions.",
            )
        return found[0]

    def table_quality(self, name: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """A table's quality results, newest first.

        Example:
            >>> # [r["status"] for r in client.table_quality("flights", 5)]
        """
        found = self._walk(f"/tables/{self._part(name)}/quality", most=check_limit(limit))
        return [decode.quality_result_of(r) for r in found]

    def table_profile(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The column profile of a table version, computed on the server on first request.

        Example:
            >>> # client.table_profile("flights")["columns"]["delay"]["nulls"]
        """
        return dict(self._get(f"/tables/{self._part(name)}/profile", {"version": version}))

    def table_summary(
        self, name: str, version: int | None = None, against: int | None = None
    ) -> QualitySummary:
        """Freshness, volume, schema changes and shifts of a table version, computed on the
        server.

        Example:
            >>> # [s.column for s in client.table_summary("flights").shifts[:3]]
        """
        params = {"version": version, "against": against}
        return decode.quality_summary_of(self._get(f"/tables/{self._part(name)}/summary", params))

    # -- features --------------------------------------------------------------------------

    def feature_views(self) -> list[FeatureViewInfo]:
        """Every applied feature view, by name.

        Example:
            >>> # [v.name for v in client.feature_views()]
        """
        return [decode.feature_view_of(v) for v in self._walk("/features/views")]

    def feature_view(self, name: str) -> FeatureViewInfo:
        """One applied feature view with its version and watermark.

        Example:
            >>> # client.feature_view("weather").spec["features"]
        """
        return decode.feature_view_of(self._get(f"/features/views/{self._part(name)}"))

    def feature_definitions(self) -> list[tuple[str, Definition, int]]:
        """Every applied entity, view and service: ``(kind, definition, version)``.

        Example:
            >>> # [(kind, d.name) for kind, d, _ in client.feature_definitions()]
        """
        return decode.definitions_of(list(self._walk("/features/definitions")))

    # -- definitions: data contracts and feature definitions -------------------------------

    def apply_contract(
        self, contract: Contract | str | Path, origin: str | None = None
    ) -> AppliedContract:
        """Validate a data contract here, then apply it on the server (needs
        ``tables:write``), which checks it against the table.

        Example:
            >>> # client.apply_contract(Path("contracts/flights.yaml")).version
        """
        from plinth.quality.contracts import read_contract

        contract, origin = read_contract(contract, origin)
        body = {"contract": contract.spec(), "origin": origin}
        path = f"/tables/{self._part(contract.table)}/contract"
        return decode.applied_contract_of(self._send("PUT", path, body))

    def contracts(self) -> list[AppliedContract]:
        """The latest contract of every table that has one.

        Example:
            >>> # [c.table for c in client.contracts()]
        """
        return [decode.applied_contract_of(c) for c in self._walk("/contracts")]

    def contract(self, table: str, version: int | None = None) -> AppliedContract:
        """A table's contract, the latest version by default.

        Example:
            >>> # client.contract("flights").contract.row_checks()
        """
        path = f"/tables/{self._part(table)}/contract"
        return decode.applied_contract_of(self._get(path, {"version": version}))

    def apply_features(self, definitions: str | Path | Sequence[Any]) -> list[Change]:
        """Load definitions here (a Python file, or the objects), then lint and record them on
        the server (needs ``features:write``), against the server's lake tables.

        Example:
            >>> # [c.status for c in client.apply_features("features.py")]
        """
        from plinth.features.definitions import collect, load_module, specs_of

        if isinstance(definitions, str | Path):
            found = load_module(definitions)
        else:
            found = collect(definitions)
        if not found:
            return []  # as locally: nothing to lint or record
        answer = self._post("/features/apply", {"definitions": specs_of(found)})
        return [decode.change_of(c) for c in answer["changes"]]

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
        params = {"filter": filter, "sort": sort, "experiment": experiment}
        data = self._get("/runs", {**params, "limit": limit, "cursor": cursor})
        items = [decode.run_summary_of(r) for r in _items(data)]
        return Page(items, data.get("next_cursor") if isinstance(data, dict) else None)

    def run(self, run_id: str) -> RunDetail:
        """Everything recorded about one run.

        Example:
            >>> # client.run("run_01J...").status
        """
        return decode.run_detail_of(self._get(f"/runs/{self._part(run_id)}"))

    def metric_history(self, run_id: str, key: str, max_points: int = 500) -> MetricHistory:
        """One metric series, downsampled on the server to at most ``max_points``.

        Example:
            >>> # client.metric_history(run_id, "loss").values[-1]
        """
        path = f"/runs/{self._part(run_id)}/metrics/{self._part(key)}"
        return decode.history_of(self._get(path, {"max_points": max_points}), run_id)

    def _details(self, run_ids: list[str]) -> list[RunDetail]:
        """The details of distinct runs, in order (a run named twice, by prefix too, once)."""
        from plinth.tracking.service import compared_ids

        details: dict[str, RunDetail] = {}
        for run_id in compared_ids(run_ids):
            detail = self.run(run_id)
            details.setdefault(detail.id, detail)
        return list(details.values())

    def tag_run(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a run, open or ended, through ``POST /runs/{id}/tags``.

        Example:
            >>> # client.tag_run(run_id, {"best": "true"})
        """
        from plinth.client.runs import _plain

        self._post(f"/runs/{run_id}/tags", {"tags": _plain(tags)})

    def compare_runs(self, run_ids: list[str]) -> Comparison:
        """Runs side by side, from each run's detail on the server.

        Example:
            >>> # client.compare_runs([a, b]).to_dict()["differs"]
        """
        from plinth.tracking.service import compare_summaries

        return compare_summaries(self._details(run_ids))

    def plot_runs(
        self,
        run_ids: list[str],
        keys: list[str] | None = None,
        path: str | Path = "runs.html",
        max_points: int = 1000,
    ) -> Path:
        """Chart the runs' metric series to a file, each series fetched from the server.

        Example:
            >>> # client.plot_runs([a, b], ["loss"], "loss.html")
        """
        from plinth.tracking.service import plot_runs

        charted = [(d.id, d.experiment, set(d.metric_summaries)) for d in self._details(run_ids)]
        return plot_runs(
            charted, keys or None, lambda r, k: self.metric_history(r, k, max_points), path
        )

    def start_run(
        self,
        experiment: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        batch_size: int | None = None,
        interval_s: float | None = None,
        parent: str | None = None,
        launch: Mapping[str, Any] | None = None,
        capture: bool = False,
    ) -> RemoteRun:
        """Start a run on the server; its metric points are sent in batches.

        ``launch`` records how a launcher started it (``launcher``, ``entry_point``,
        ``arguments``, ``requested``), as ``plinth train`` does. ``capture`` records this
        process's environment (code, interpreter, packages, machine, git state, and the
        ``git.diff`` artifact when the tree is dirty), as a local ``ws.run`` does.

        Example:
            >>> # with client.start_run("demo", params={"lr": 0.1}) as run: ...
        """
        from plinth.client.runs import _plain

        body: dict[str, Any] = {"experiment": experiment}
        if params:
            body["params"] = _plain(params)
        if tags:
            body["tags"] = _plain(tags)
        if parent:
            body["parent"] = parent
        body.update({k: v for k, v in (launch or {}).items() if v is not None})
        diff = None
        if capture:
            from plinth.tracking.environment import describe

            body["environment"], diff = describe(body.get("entry_point"), body.get("arguments"))
        created = self._post("/runs", body)
        options: dict[str, Any] = {}
        if batch_size is not None:
            options["batch_size"] = batch_size
        if interval_s is not None:
            options["interval_s"] = interval_s
        run = RemoteRun(self, created["id"], experiment, **options)
        if diff:
            run.log_artifact(diff, "git.diff")
        return run

    # -- registry --------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        """Every registered model, by name.

        Example:
            >>> # [m.name for m in client.models()]
        """
        return [decode.model_summary_of(m) for m in self._walk("/models")]

    def model(self, name: str) -> ModelDetail:
        """One model with its versions.

        Example:
            >>> # client.model("delay").aliases
        """
        data = self._get(f"/models/{self._part(name)}")
        summary = decode.model_summary_of(data.get("model", data))
        versions = []
        for entry in data.get("versions") or []:
            if isinstance(entry, Mapping):
                versions.append(decode.model_version_of(entry))
            else:
                versions.append(self.model_version(name, int(entry)))
        return ModelDetail(summary, sorted(versions, key=lambda v: v.version))

    def model_version(self, name: str, version: int | str) -> ModelVersionInfo:
        """One version of a model, by number or alias.

        Example:
            >>> # client.model_version("delay", "champion").version
        """
        text = str(version)
        if not text.isdigit():  # an alias: the API addresses versions by number
            from plinth.errors import ModelNotFoundError
            from plinth.registry.uri import LATEST

            detail = self.model(name)
            if text == LATEST and detail.versions:
                return detail.versions[-1]
            for info in detail.versions:
                if text in info.aliases:
                    return info
            known = ", ".join(detail.aliases) or "none"
            raise ModelNotFoundError(
                f"Model '{name}' has no alias '{text}'.",
                hint=f"Its aliases are: {known}. Set one with 'plinth models alias set'.",
            )
        path = f"/models/{self._part(name)}/versions/{text}"
        return decode.model_version_of(self._get(path))

    def set_alias(
        self, name: str, alias: str, version: int, reason: str | None = None
    ) -> AliasEvent | None:
        """Point an alias at a version (needs ``models:promote``).

        Example:
            >>> # client.set_alias("delay", "champion", 3, reason="AUC 0.74")
        """
        body: dict[str, Any] = {"version": int(version)}
        if reason is not None:
            body["reason"] = reason
        path = f"/models/{self._part(name)}/aliases/{self._part(alias)}"
        return _alias_event(self._send("PUT", path, body))

    def remove_alias(self, name: str, alias: str, reason: str | None = None) -> AliasEvent | None:
        """Remove an alias (needs ``models:promote``).

        Example:
            >>> # client.remove_alias("delay", "challenger", reason="retired")
        """
        path = f"/models/{self._part(name)}/aliases/{self._part(alias)}"
        if reason is not None:
            path += "?" + urlencode({"reason": reason})
        return _alias_event(self._send("DELETE", path))

    def model_card(self, name: str, version: int | None = None) -> ModelCard:
        """The model card of a version, the newest by default.

        Example:
            >>> # client.model_card("delay", 3).markdown()
        """
        return decode.card_of(self._get(f"/models/{self._part(name)}/card", {"version": version}))

    def gate_decisions(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """The promotion-gate decisions of a model, newest first.

        Example:
            >>> # [d["passed"] for d in client.gate_decisions("delay")]
        """
        return list(self._walk(f"/models/{self._part(name)}/gates", {"version": version}))

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
        """Package a model here, upload its files and register it on the server (needs
        ``models:write``).

        Example:
            >>> # client.register_model(model, "delay", run=run, example=frame[:5])
        """
        from plinth.client import _remote_models

        return _remote_models.register(
            self, model, name, run=run, features=features, signature=signature,
            example=example, training_set=training_set, metrics=metrics,
            description=description, tags=tags, flavor=flavor,
        )  # fmt: skip

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every change of a model's aliases, oldest first.

        Example:
            >>> # [(e.action, e.version) for e in client.alias_history("delay", "champion")]
        """
        found = self._walk(f"/models/{self._part(name)}/alias-history", {"alias": alias})
        return [e for e in map(decode.alias_event_of, found) if e is not None]

    def diff_models(self, uri_a: str, uri_b: str) -> ModelDiff:
        """Two versions side by side, compared on the server.

        Example:
            >>> # [r.key for r in client.diff_models("delay:1", "delay:2").rows if r.differs]
        """
        from plinth.registry.uri import parse_uri

        def number(uri: str) -> tuple[str, int]:
            ref = parse_uri(uri)
            if ref.version is not None:
                return ref.name, ref.version
            return ref.name, self.model_version(ref.name, ref.alias or "latest").version

        (a, x), (b, y) = number(uri_a), number(uri_b)
        path = f"/models/{self._part(a)}/versions/{x}/diff/{self._part(b)}/{y}"
        return decode.model_diff_of(self._get(path))

    def export_model(self, name: str, version: int | str, folder: str | Path) -> Path:
        """Download a version's files and manifest to a folder, each verified.

        Example:
            >>> # client.export_model("delay", "champion", "exports/delay")
        """
        from plinth.client import _remote_models

        return _remote_models.export(self, name, version, folder)

    # -- pipelines, deployments, monitoring ------------------------------------------------

    def pipeline_runs(
        self, limit: int = 20, pipeline: str | None = None
    ) -> list[PipelineRunSummary]:
        """The most recent pipeline runs.

        Example:
            >>> # [r.status for r in client.pipeline_runs(5)]
        """
        found = self._walk("/pipelines/runs", {"pipeline": pipeline}, most=check_limit(limit))
        return [decode.pipeline_run_of(r) for r in found]

    def pipeline_run(self, run_id: str) -> PipelineRunDetail:
        """One pipeline run with its steps.

        Example:
            >>> # [s.status for s in client.pipeline_run("prun_01J...").steps]
        """
        return decode.pipeline_run_detail_of(self._get(f"/pipelines/runs/{self._part(run_id)}"))

    def pipeline_log(self, run_id: str, step: str) -> str:
        """A step's captured stdout and stderr, as text, read from the server's artifact store.

        Example:
            >>> # print(client.pipeline_log("prun_01J...", "train"))
        """
        path = f"/pipelines/runs/{self._part(run_id)}/steps/{self._part(step)}/log"
        return str(self._get(path)["log"])

    def deployments(self) -> list[DeploymentInfo]:
        """Every deployment.

        Example:
            >>> # [d.name for d in client.deployments()]
        """
        return [decode.deployment_of(d) for d in self._walk("/deployments")]

    def deployment(self, name: str) -> DeploymentInfo:
        """One deployment.

        Example:
            >>> # client.deployment("delay").revision
        """
        return decode.deployment_of(self._get(f"/deployments/{self._part(name)}"))

    def deployment_history(self, name: str) -> list[RevisionInfo]:
        """Every revision of a deployment, oldest first.

        Example:
            >>> # [r.action for r in client.deployment_history("delay")]
        """
        data = self._get(f"/deployments/{self._part(name)}")
        found = [decode.revision_of(r) for r in data.get("revisions") or []]
        return sorted(found, key=lambda r: r.revision)

    def deployment_stats(self, name: str) -> dict[str, Any]:
        """Serving figures of a deployment, computed on the server from the prediction log.

        Example:
            >>> # client.deployment_stats("delay")["latency_ms"]["p95"]
        """
        return decode.stats_of(self._get(f"/deployments/{self._part(name)}/stats"))

    def drift(self, model: str, window: str = "1d") -> list[WindowDrift]:
        """Drift of a model's prediction log by window, computed on the server.

        Example:
            >>> # [w.report.share_drifted for w in client.drift("delay@champion", "1d")]
        """
        found = self._walk(f"/monitoring/{self._part(model)}/drift", {"window": window})
        return [decode.window_drift_of(w) for w in found]

    def alerts(self, state: str | None = None, model: str | None = None) -> list[AlertInfo]:
        """Alerts, newest first.

        Example:
            >>> # [a.message for a in client.alerts(state="firing")]
        """
        found = self._walk("/alerts", {"state": state, "model": model}, most=MAX_LIMIT)
        return [decode.alert_of(a) for a in found]

    def alert(self, alert_id: int) -> AlertDetail:
        """One alert with its events.

        Example:
            >>> # [e.kind for e in client.alert(7).events]
        """
        return decode.alert_detail_of(self._get(f"/alerts/{int(alert_id)}"))

    # -- cost ------------------------------------------------------------------------------

    def cost(
        self, by: str = "model", since: datetime | None = None, until: datetime | None = None
    ) -> CostReport:
        """Costs in a window, grouped ``by`` run, model, pipeline or deployment, priced on
        the server with its price table.

        Example:
            >>> # client.cost("run", since=parse_since("30d")).total_usd
        """
        from plinth._core.clock import as_utc
        from plinth.cost.accounting import BY, check_window

        if by not in BY:  # the service's own messages, before a request
            raise ConfigError(
                f"Cannot group costs by '{by}'.", hint=f"Use one of: {', '.join(BY)}."
            )
        check_window(since, until)
        params = {
            "by": by,
            "since": as_utc(since).isoformat() if since is not None else None,
            "until": as_utc(until).isoformat() if until is not None else None,
        }
        return decode.cost_report_of(self._get("/cost", params))

    # -- administration and cost reports ----------------------------------------------------

    def tokens(self, include_revoked: bool = True) -> list[TokenInfo]:
        """Every API token's record, newest first (needs ``tokens:read``, an admin's).

        Example:
            >>> # [(t.id, t.status()) for t in client.tokens(include_revoked=False)]
        """
        params = {"include_revoked": "true" if include_revoked else "false"}
        return [decode.token_of(t) for t in self._walk("/tokens", params)]

    def token(self, token_id: str) -> TokenInfo:
        """One token's record (needs ``tokens:read``).

        Example:
            >>> # client.token("tok_01J...").status()
        """
        return decode.token_of(self._get(f"/tokens/{self._part(token_id)}"))

    def create_token(
        self,
        name: str,
        *,
        owner: str | None = None,
        expires: str | None = "90d",
        role: str | None = None,
        project: str | None = None,
    ) -> NewToken:
        """Create a token on the server, for ``owner`` (the caller by default); needs
        ``tokens:admin`` in the server's project, and in every project it reaches.

        Example:
            >>> # client.create_token("ci", role="viewer", expires="30d").secret
        """
        body = {"name": name, "owner": owner, "expires": expires, "role": role,
                "project": project}  # fmt: skip
        return decode.new_token_of(self._post("/tokens", body))

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token and its own roles (needs ``tokens:admin``).

        Example:
            >>> # client.revoke_token("tok_01J...").status()
        """
        return decode.token_of(self._send("DELETE", f"/tokens/{self._part(token_id)}"))

    def roles(self, project: str | None = None) -> RoleListing:
        """The server's role bindings and implicit admin (needs ``tokens:read``).

        Example:
            >>> # [(b.subject, b.role) for b in client.roles().bindings]
        """
        return decode.role_listing_of(self._get("/roles", {"project": project}))

    def grant_role(self, subject: str, role: str, project: str | None = None) -> RoleBindingInfo:
        """Give a subject a role in a project (needs ``tokens:admin`` there).

        Example:
            >>> # client.grant_role("ana", "deployer")
        """
        body = {"subject": subject, "role": role, "project": project}
        return decode.binding_of(self._post("/roles", body))

    def revoke_role(self, subject: str, project: str | None = None) -> RoleBindingInfo:
        """Take away a subject's role in a project (needs ``tokens:admin`` there).

        Example:
            >>> # client.revoke_role("ana")
        """
        query = {"subject": subject, **({"project": project} if project else {})}
        return decode.binding_of(self._send("DELETE", "/roles?" + urlencode(query)))

    def waste(self, since: datetime | None = None, until: datetime | None = None) -> WasteReport:
        """Utilization of what runs and deployments requested, priced on the server.

        Example:
            >>> # client.waste(parse_since("30d")).wasted_usd
        """
        from plinth._core.clock import as_utc
        from plinth.cost.accounting import check_window

        check_window(since, until)
        params = {
            "since": as_utc(since).isoformat() if since is not None else None,
            "until": as_utc(until).isoformat() if until is not None else None,
        }
        return decode.waste_of(self._get("/cost/waste", params))

    def prices(self) -> PriceTable:
        """The server's price table (its defaults and overrides).

        Example:
            >>> # client.prices().cpu_core_hour
        """
        return decode.price_table_of(self._get("/cost/prices"))

    def evaluate_budgets(self) -> list[BudgetStatus]:
        """Evaluate the server's budgets and their alerts (needs ``monitoring:write``).

        Example:
            >>> # [(b.project, b.share) for b in client.evaluate_budgets()]
        """
        return [decode.budget_status_of(b) for b in self._post("/cost/budgets", None) or []]

    # -- governance ------------------------------------------------------------------------

    def audit(
        self,
        resource: str | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Audit events, newest first (needs ``tokens:read``, an admin's).

        Example:
            >>> # [e.action for e in client.audit("model:delay")]
        """
        check_limit(limit)
        params = {"resource": resource, "action": action}
        if actor is None:
            return [decode.audit_of(e) for e in self._walk("/audit", params, most=limit)]
        out: list[AuditRecord] = []
        for item in self._walk("/audit", params):  # the API has no actor filter
            if item.get("actor") == actor:
                out.append(decode.audit_of(item))
                if len(out) >= limit:
                    break
        return out

    def audit_verify(self) -> Verification:
        """Check the audit chain on the server.

        Example:
            >>> # client.audit_verify().ok
        """
        return decode.verification_of(self._get("/audit/verify"))

    def lineage(self, obj: str, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """The lineage of an object.

        Example:
            >>> # client.lineage("delay@champion").of_kind("table_version")
        """
        params = {"direction": direction, "depth": depth}
        return decode.lineage_of(self._get(f"/lineage/{self._part(obj)}", params))

    def whoami(self) -> Identity:
        """Who the token acts for, and what it may do.

        Example:
            >>> # client.whoami().subject
        """
        return decode.identity_of(self._get("/whoami"))


def _alias_event(data: Any) -> AliasEvent | None:
    """The alias event of a PUT/DELETE answer: the event itself, or under ``event``."""
    if isinstance(data, Mapping) and "event" in data:
        data = data["event"]
    if isinstance(data, Mapping) and "action" in data and "at" in data:
        return decode.alias_event_of(data)
    return None

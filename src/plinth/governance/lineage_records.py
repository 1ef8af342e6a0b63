"""The catalog records behind lineage nodes, and the relations read from them.

Used by :mod:`plinth.governance.lineage`: :func:`fetch` reads the row a node stands for, and
:data:`DERIVED` maps ``(kind, "up" | "down")`` to a function listing the neighbours that the
records imply (a model version's run and training set, its aliases, deployments, prediction
log, monitor profiles and alerts; an alert's retraining pipeline runs ...), on top of the
stored lineage edges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plinth.catalog import models as m
from plinth.errors import PlinthError

if TYPE_CHECKING:
    from plinth.workspace import Workspace

#: Node kinds backed by one catalog row each, fetched by primary key.
ROWS: dict[str, Any] = {
    "training_set": m.TrainingSet,
    "run": m.Run,
    "pipeline_run": m.PipelineRun,
    "deployment": m.Deployment,
    "monitor_profile": m.MonitorProfile,
    "alert": m.Alert,
    "gate_decision": m.GateDecision,
}
#: Node kinds of feature definitions, and the ``kind`` their catalog rows have.
DEFINITION = {"entity": "entity", "feature_view": "view", "feature_service": "service"}
TRAINING_SET = re.compile(r"ts_[0-9A-Z]{26}")

Key = tuple[str, str]
#: A neighbour found from a node: the other node, the relation, the edge's details.
Found = tuple[Key, str, "dict[str, Any] | None"]


@dataclass(frozen=True)
class Context:
    """What a relation function reads with: the workspace and an open catalog session."""

    ws: Workspace
    s: Session


def fetch(s: Session, kind: str, ident: str) -> Any:
    """The catalog row behind a node, or ``None``."""
    try:
        if kind in ROWS:
            numeric = kind in ("monitor_profile", "alert", "gate_decision")
            return s.get(ROWS[kind], int(ident) if numeric else ident)
        if kind in DEFINITION:
            name, _, version = ident.partition("@")
            d = m.FeatureDefinition
            query = select(d).where(d.kind == DEFINITION[kind], d.name == name)
            return s.scalar(query.where(d.version == int(version)))
        if kind == "model_version":
            name, _, version = ident.rpartition("/")
            mv = m.ModelVersion
            return s.scalar(select(mv).where(mv.model_name == name, mv.version == int(version)))
        if kind == "table_version":
            name, _, version = ident.rpartition("@")
            t, v = m.LakeTable, m.TableVersion
            query = select(v).join(t, v.table_id == t.id).where(t.name == name)
            return s.scalar(query.where(v.version == int(version)))
        if kind == "step_run":
            run_id, _, step = ident.partition("/")
            sr = m.StepRun
            return s.scalar(select(sr).where(sr.pipeline_run_id == run_id, sr.step == step))
        if kind == "alias":
            return s.get(m.ModelAlias, tuple(ident.split("@", 1)))
    except ValueError:
        return None
    return None


def definition_version(s: Session, kind: str, name: str, at: datetime | None = None) -> int | None:
    d = m.FeatureDefinition
    query = select(d.version).where(d.kind == DEFINITION[kind], d.name == name)
    if at is not None:
        query = query.where(d.created_at <= at)
    return s.scalar(query.order_by(d.version.desc()).limit(1))


# -- relations read from the records ------------------------------------------------------


def _route_targets(w: Context, spec: dict[str, Any]) -> Iterator[tuple[Key, str]]:
    """The versions or aliases a deployment spec routes to (``routes``) or shadows."""
    from plinth.registry.uri import LATEST, parse_uri

    uris = [(r.get("uri"), "routes") for r in spec.get("routes", [])]
    for uri, relation in [*uris, (spec.get("shadow"), "shadows")]:
        try:
            ref = parse_uri(uri) if uri else None
            if ref is not None and ref.version is None and ref.alias in (None, LATEST):
                ref = parse_uri("{}:{}".format(*w.ws.models.resolve(uri)))
        except PlinthError:
            continue
        if ref is not None and ref.version is not None:
            yield ("model_version", f"{ref.name}/{ref.version}"), relation
        elif ref is not None:
            yield ("alias", f"{ref.name}@{ref.alias}"), relation


def _deployments(w: Context, model: str, target: Key) -> Iterator[Found]:
    for dep in w.s.scalars(select(m.Deployment).where(m.Deployment.model_name == model)):
        for found, relation in _route_targets(w, dep.spec):
            if found == target:
                yield ("deployment", dep.name), relation, None


def prediction_log(w: Context, model: str) -> tuple[str, int, int] | None:
    """A model's prediction-log table, its newest version and rows, when it has one."""
    from plinth.serving.prediction_log import log_table

    t, v = m.LakeTable, m.TableVersion
    query = select(t.name, v.version, v.row_count).join(v, v.table_id == t.id)
    row = w.s.execute(query.where(t.name == log_table(model)).order_by(v.version.desc())).first()
    return (row[0], int(row[1]), int(row[2])) if row else None


def _alert_version(w: Context, alert: m.Alert) -> int | None:
    """The version the alert's model URI named when it fired (aliases as they were then)."""
    from plinth.registry.uri import LATEST, parse_uri

    try:
        ref = parse_uri((alert.details or {}).get("model_uri") or alert.model_name)
    except PlinthError:
        return None
    if ref.version is not None:
        return ref.version
    if ref.alias not in (None, LATEST):
        ev = m.ModelAliasEvent
        query = select(ev.version).where(ev.model_name == ref.name, ev.alias == ref.alias)
        return w.s.scalar(query.where(ev.at <= alert.fired_at).order_by(ev.id.desc()).limit(1))
    mv = m.ModelVersion
    query = select(mv.version).where(mv.model_name == ref.name, mv.created_at <= alert.fired_at)
    return w.s.scalar(query.order_by(mv.version.desc()).limit(1))


def _alerts(w: Context, name: str, version: int) -> Iterator[Found]:
    for alert in w.s.scalars(select(m.Alert).where(m.Alert.model_name == name)):
        if _alert_version(w, alert) == version:
            yield ("alert", str(alert.id)), "raised", None


def _profiles(w: Context, name: str, version: int | None = None) -> list[m.MonitorProfile]:
    p = m.MonitorProfile
    query = select(p).where(p.model_name == name)
    if version is not None:
        query = query.where(p.model_version == version)
    return list(w.s.scalars(query.order_by(p.id)))


def _registered(w: Context, run_id: str | None, mv: m.ModelVersion) -> bool:
    """Whether pipeline run ``run_id`` registered ``mv`` (it was created during the run)."""
    run = w.s.get(m.PipelineRun, run_id) if run_id else None
    return run is not None and run.started_at <= mv.created_at <= (run.ended_at or mv.created_at)


def _up_model_version(w: Context, ident: str) -> Iterator[Found]:
    row = fetch(w.s, "model_version", ident)
    if row is None:
        return
    if row.run_id:
        yield ("run", row.run_id), "produced", None
    if row.training_set_id:
        yield ("training_set", row.training_set_id), "trained", None
    if row.feature_service:
        service = f"{row.feature_service}@{row.feature_service_version}"
        yield ("feature_service", service), "features_of", None
    g = m.GateDecision
    query = select(g.pipeline_run_id).where(
        g.model_name == row.model_name, g.candidate_version == row.version
    )
    for run_id in w.s.scalars(query):
        if _registered(w, run_id, row):
            yield ("pipeline_run", run_id), "registered", None


def _down_model_version(w: Context, ident: str) -> Iterator[Found]:
    name, _, number = ident.rpartition("/")
    a = m.ModelAlias
    query = select(a.alias).where(a.model_name == name, a.version == int(number))
    for alias in w.s.scalars(query):
        yield ("alias", f"{name}@{alias}"), "aliased_as", None
    yield from _deployments(w, name, ("model_version", ident))
    if prediction_log(w, name):
        yield ("prediction_log", name), "logged_to", None
    profiles = _profiles(w, name, int(number))
    for p in profiles:
        yield ("monitor_profile", str(p.id)), "monitored_by", None
    if not profiles:
        yield from _alerts(w, name, int(number))


def _up_alias(w: Context, ident: str) -> Iterator[Found]:
    yield ("model_version", "{}/{}".format(*w.ws.models.resolve(ident))), "aliased_as", None


def _up_deployment(w: Context, ident: str) -> Iterator[Found]:
    dep = w.s.get(m.Deployment, ident)
    for target, relation in _route_targets(w, dep.spec if dep else {}):
        yield target, relation, None


def _down_deployment(w: Context, ident: str) -> Iterator[Found]:
    dep = w.s.get(m.Deployment, ident)
    if dep is not None and prediction_log(w, dep.model_name):
        yield ("prediction_log", dep.model_name), "logs_to", None


def _up_log(w: Context, ident: str) -> Iterator[Found]:
    for dep in w.s.scalars(select(m.Deployment.name).where(m.Deployment.model_name == ident)):
        yield ("deployment", dep), "logs_to", None
    aliased = w.s.scalars(select(m.ModelAlias.version).where(m.ModelAlias.model_name == ident))
    for version in sorted({*aliased, *(p.model_version for p in _profiles(w, ident))}):
        yield ("model_version", f"{ident}/{version}"), "logged_to", None


def _down_log(w: Context, ident: str) -> Iterator[Found]:
    for p in _profiles(w, ident):
        yield ("monitor_profile", str(p.id)), "folded_into", {"log_version": p.log_version}


def _up_profile(w: Context, ident: str) -> Iterator[Found]:
    p = w.s.get(m.MonitorProfile, int(ident))
    if p is None:
        return
    yield ("model_version", f"{p.model_name}/{p.model_version}"), "monitored_by", None
    if prediction_log(w, p.model_name):
        yield ("prediction_log", p.model_name), "folded_into", {"log_version": p.log_version}
    for ts in dict.fromkeys(TRAINING_SET.findall(p.reference)):
        yield ("training_set", ts), "reference_of", None


def _down_profile(w: Context, ident: str) -> Iterator[Found]:
    p = w.s.get(m.MonitorProfile, int(ident))
    if p is not None:
        yield from _alerts(w, p.model_name, p.model_version)


def _down_training_set(w: Context, ident: str) -> Iterator[Found]:
    p = m.MonitorProfile
    for pid in w.s.scalars(select(p.id).where(p.reference.like(f"%{ident}%"))):
        yield ("monitor_profile", str(pid)), "reference_of", None


def _up_alert(w: Context, ident: str) -> Iterator[Found]:
    alert = w.s.get(m.Alert, int(ident))
    version = _alert_version(w, alert) if alert else None
    if alert is None or version is None:
        return
    profiles = _profiles(w, alert.model_name, version)
    for p in profiles:
        yield ("monitor_profile", str(p.id)), "raised", None
    if not profiles:
        yield ("model_version", f"{alert.model_name}/{version}"), "raised", None


def _down_alert(w: Context, ident: str) -> Iterator[Found]:
    ev = m.AlertEvent
    query = select(ev.pipeline_run_id).where(ev.alert_id == int(ident))
    for run_id in w.s.scalars(query.where(ev.pipeline_run_id.is_not(None)).order_by(ev.id)):
        yield ("pipeline_run", run_id), "retrained_by", None


def _up_pipeline_run(w: Context, ident: str) -> Iterator[Found]:
    ev = m.AlertEvent
    for alert_id in w.s.scalars(select(ev.alert_id).where(ev.pipeline_run_id == ident)):
        yield ("alert", str(alert_id)), "retrained_by", None


def _down_pipeline_run(w: Context, ident: str) -> Iterator[Found]:
    g, mv = m.GateDecision, m.ModelVersion
    joined = (g.model_name == mv.model_name) & (g.candidate_version == mv.version)
    for row in w.s.scalars(select(mv).join(g, joined).where(g.pipeline_run_id == ident)):
        if _registered(w, ident, row):
            yield ("model_version", f"{row.model_name}/{row.version}"), "registered", None


def _up_run(w: Context, ident: str) -> Iterator[Found]:
    run = w.s.get(m.Run, ident)
    if run is not None and run.parent_id:
        yield ("run", run.parent_id), "parent_of", None


def _down_run(w: Context, ident: str) -> Iterator[Found]:
    for child in w.s.scalars(select(m.Run.id).where(m.Run.parent_id == ident)):
        yield ("run", child), "parent_of", None
    mv = m.ModelVersion
    for name, version in w.s.execute(select(mv.model_name, mv.version).where(mv.run_id == ident)):
        yield ("model_version", f"{name}/{version}"), "produced", None


def _parts(w: Context, ident: str, kind: str, part: str, relation: str) -> Iterator[Found]:
    """The definitions a view or service names (entities, views), as they were when defined."""
    row = fetch(w.s, kind, ident)
    for other in row.spec.get("entities" if part == "entity" else "features", []) if row else ():
        found = definition_version(w.s, part, str(other), row.created_at)
        if found is not None:
            yield (part, f"{other}@{found}"), relation, None


def _down_service(w: Context, ident: str) -> Iterator[Found]:
    name, _, version = ident.partition("@")
    mv = m.ModelVersion
    query = select(mv.model_name, mv.version).where(
        mv.feature_service == name, mv.feature_service_version == int(version)
    )
    for model, number in w.s.execute(query):
        yield ("model_version", f"{model}/{number}"), "features_of", None


def _steps(w: Context, ident: str, way: str) -> Iterator[Found]:
    """Steps of the same pipeline run that fed this one (up) or that it fed (down).

    Stored edges go step -> artifact -> step; artifacts are content-addressed, so a cached step
    shares them with other runs. Only the steps of this step's own run are followed.
    """
    e, run_id = m.LineageEdge, ident.partition("/")[0]
    near, far = (e.target_id, e.source_id) if way == "up" else (e.source_id, e.target_id)
    own = "input_of" if way == "up" else "produced"
    query = select(far, e.details).where(near == ident, e.relation == own)
    for artifact, details in w.s.execute(query.where(e.source_kind.in_(["step_run", "artifact"]))):
        other = "produced" if way == "up" else "input_of"
        step = select(far, e.details).where(near == artifact, e.relation == other)
        for found, more in w.s.execute(step.where(far.like(f"{run_id}/%"))):
            both = {**(details or {}), **(more or {}), "artifact": artifact}
            yield ("step_run", found), "fed", both


DERIVED: dict[tuple[str, str], Callable[[Context, str], Iterator[Found]]] = {
    ("model_version", "up"): _up_model_version,
    ("model_version", "down"): _down_model_version,
    ("alias", "up"): _up_alias,
    ("alias", "down"): lambda w, i: _deployments(w, i.partition("@")[0], ("alias", i)),
    ("deployment", "up"): _up_deployment,
    ("deployment", "down"): _down_deployment,
    ("prediction_log", "up"): _up_log,
    ("prediction_log", "down"): _down_log,
    ("monitor_profile", "up"): _up_profile,
    ("monitor_profile", "down"): _down_profile,
    ("training_set", "down"): _down_training_set,
    ("alert", "up"): _up_alert,
    ("alert", "down"): _down_alert,
    ("pipeline_run", "up"): _up_pipeline_run,
    ("pipeline_run", "down"): _down_pipeline_run,
    ("run", "up"): _up_run,
    ("run", "down"): _down_run,
    ("feature_view", "up"): lambda w, i: _parts(w, i, "feature_view", "entity", "keys"),
    ("feature_service", "up"): lambda w, i: _parts(
        w, i, "feature_service", "feature_view", "part_of"
    ),
    ("feature_service", "down"): _down_service,
    ("step_run", "up"): lambda w, i: _steps(w, i, "up"),
    ("step_run", "down"): lambda w, i: _steps(w, i, "down"),
}

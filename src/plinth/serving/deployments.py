"""Deployments: which versions of a model take its traffic, with what weights, and a shadow.

A deployment is named after its model and holds a spec::

    {"routes": [{"uri": "delay@champion", "weight": 90}, {"uri": "delay:4", "weight": 10}],
     "shadow": "delay:5"}

A route's URI may name an alias, so the deployment follows the alias when it moves. Every
change is a new revision kept in the catalog; ``rollback`` re-applies an earlier one (by
default the one before the current). A running ``plinth serve`` polls the catalog and rolls
to a changed spec or a moved alias without failing a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth._core.clock import utcnow
from plinth.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from plinth.workspace import Workspace

TARGETS = ("local", "ray", "k8s")


class DeploymentNotFoundError(NotFoundError):
    """No deployment has that name (or no such revision exists)."""


@dataclass(frozen=True)
class Route:
    """One destination of a model's traffic: a model URI and its share in percent."""

    uri: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        """The route as stored in a deployment spec."""
        return {"uri": self.uri, "weight": self.weight}


@dataclass(frozen=True)
class DeploymentSpec:
    """The routes of a deployment (weights sum to 100) and an optional shadow URI.

    Example:
        >>> spec = DeploymentSpec.of("delay@champion", canary="delay:4", canary_weight=10)
        >>> [(r.uri, r.weight) for r in spec.routes]
        [('delay@champion', 90.0), ('delay:4', 10.0)]
    """

    routes: tuple[Route, ...]
    shadow: str | None = None

    @classmethod
    def of(
        cls,
        uri: str,
        *,
        canary: str | None = None,
        canary_weight: float = 10.0,
        shadow: str | None = None,
    ) -> DeploymentSpec:
        """A spec serving ``uri``, with a canary taking ``canary_weight`` percent.

        Example:
            >>> DeploymentSpec.of("delay@champion").routes[0].weight
            100.0
        """
        if canary is None:
            return cls((Route(uri, 100.0),), shadow)
        if not 0 < canary_weight < 100:
            raise ConfigError(
                f"A canary weight of {canary_weight}% is not between 0 and 100.",
                hint="Give the canary's share of traffic in percent, e.g. --canary-weight 10.",
            )
        weight = float(canary_weight)
        return cls((Route(uri, 100.0 - weight), Route(canary, weight)), shadow)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        """The spec stored in the catalog.

        Example:
            >>> DeploymentSpec.from_dict({"routes": [{"uri": "m@a", "weight": 100}]}).shadow
        """
        routes = tuple(Route(str(r["uri"]), float(r["weight"])) for r in data.get("routes", []))
        return cls(routes, data.get("shadow"))

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in the catalog."""
        return {"routes": [r.to_dict() for r in self.routes], "shadow": self.shadow}

    def describe(self) -> str:
        """One line: ``delay@champion 90% · delay:4 10% · shadow delay:5``."""
        parts = [f"{r.uri} {r.weight:g}%" for r in self.routes]
        if self.shadow:
            parts.append(f"shadow {self.shadow}")
        return " · ".join(parts)


@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment as the catalog holds it now."""

    name: str
    model: str
    revision: int
    spec: DeploymentSpec
    target: str
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "model": self.model,
            "revision": self.revision,
            "spec": self.spec.to_dict(),
            "target": self.target,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of a deployment: what was applied, by whom, when and why."""

    deployment: str
    revision: int
    spec: DeploymentSpec
    target: str
    action: str
    reason: str | None
    at: datetime
    by: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "deployment": self.deployment,
            "revision": self.revision,
            "spec": self.spec.to_dict(),
            "target": self.target,
            "action": self.action,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "by": self.by,
        }


class Deployments:
    """The deployments recorded in a workspace's catalog (``ws.deployments``).

    Example:
        >>> # ws.deployments.apply(DeploymentSpec.of("delay@champion", canary="delay:4"))
        >>> # ws.deployments.rollback("delay")
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def _check(self, spec: DeploymentSpec) -> str:
        from plinth.registry.uri import parse_uri

        if not spec.routes:
            raise ConfigError("A deployment needs at least one route.", hint="Name a model URI.")
        names = {parse_uri(r.uri).name for r in spec.routes}
        if spec.shadow:
            names.add(parse_uri(spec.shadow).name)
        if len(names) != 1:
            raise ConfigError(
                f"A deployment serves one model, but its routes name {', '.join(sorted(names))}.",
                hint="Route only versions of one model; serve other models side by side.",
            )
        total = sum(r.weight for r in spec.routes)
        if any(r.weight <= 0 for r in spec.routes) or abs(total - 100.0) > 1e-6:
            raise ConfigError(
                f"Route weights must be positive and sum to 100, not {total:g}.",
                hint="For a 10% canary give 90 and 10.",
            )
        for uri in [*(r.uri for r in spec.routes), *([spec.shadow] if spec.shadow else [])]:
            self.ws.models.resolve(uri)
        return names.pop()

    def apply(
        self,
        spec: DeploymentSpec,
        *,
        name: str | None = None,
        target: str = "local",
        reason: str | None = None,
        action: str = "apply",
    ) -> DeploymentInfo:
        """Record ``spec`` as the deployment's new revision (checked: URIs resolve, weights).

        Example:
            >>> # ws.deployments.apply(DeploymentSpec.of("delay@champion")).revision
        """
        from plinth.catalog import audit
        from plinth.catalog.models import Deployment, DeploymentRevision

        if target not in TARGETS:
            raise ConfigError(f"Unknown target '{target}'.", hint=f"Use one of: {TARGETS}.")
        model = self._check(spec)
        name = name or model
        now = utcnow()
        user = self.ws.settings.user
        with self.ws.catalog.session() as session:
            row = session.get(Deployment, name, with_for_update=True)
            if row is None:
                row = Deployment(
                    name=name,
                    model_name=model,
                    revision=0,
                    spec={},
                    target=target,
                    created_at=now,
                    updated_at=now,
                    updated_by=user,
                )
                session.add(row)
            row.revision += 1
            row.spec = spec.to_dict()
            row.target = target
            row.model_name = model
            row.updated_at = now
            row.updated_by = user
            session.add(
                DeploymentRevision(
                    deployment=name,
                    revision=row.revision,
                    spec=spec.to_dict(),
                    target=target,
                    action=action,
                    reason=reason,
                    at=now,
                    by=user,
                )
            )
            audit.record(
                session,
                actor=user,
                action=f"deployment.{action}",
                resource=f"deployment:{name}@{row.revision}",
                details={"spec": spec.to_dict(), "target": target, "reason": reason},
            )
            session.flush()
            return _info(row)

    def get(self, name: str) -> DeploymentInfo:
        """The deployment called ``name``.

        Example:
            >>> # ws.deployments.get("delay").spec.describe()
        """
        found = self.find(name)
        if found is None:
            raise DeploymentNotFoundError(
                f"No deployment is called '{name}'.",
                hint="List them with 'plinth deploy list'; create one with 'plinth deploy URI'.",
            )
        return found

    def find(self, name: str) -> DeploymentInfo | None:
        """The deployment called ``name``, or ``None``.

        Example:
            >>> # ws.deployments.find("delay") is None
        """
        from plinth.catalog.models import Deployment

        with self.ws.catalog.session() as session:
            row = session.get(Deployment, name)
            return _info(row) if row is not None else None

    def list(self) -> list[DeploymentInfo]:
        """Every deployment, by name.

        Example:
            >>> # [d.name for d in ws.deployments.list()]
        """
        from plinth.catalog.models import Deployment

        with self.ws.catalog.session() as session:
            rows = session.scalars(select(Deployment).order_by(Deployment.name)).all()
            return [_info(r) for r in rows]

    def history(self, name: str) -> list[RevisionInfo]:
        """Every revision of a deployment, oldest first.

        Example:
            >>> # [r.action for r in ws.deployments.history("delay")]
        """
        from plinth.catalog.models import DeploymentRevision

        self.get(name)
        with self.ws.catalog.session() as session:
            rows = session.scalars(
                select(DeploymentRevision)
                .where(DeploymentRevision.deployment == name)
                .order_by(DeploymentRevision.revision)
            ).all()
            return [
                RevisionInfo(
                    r.deployment,
                    r.revision,
                    DeploymentSpec.from_dict(r.spec),
                    r.target,
                    r.action,
                    r.reason,
                    r.at,
                    r.by,
                )
                for r in rows
            ]

    def rollback(
        self, name: str, *, to: int | None = None, reason: str | None = None
    ) -> DeploymentInfo:
        """Re-apply an earlier revision (``to``; default: the one before the current).

        Example:
            >>> # ws.deployments.rollback("delay").spec.describe()
        """
        current = self.get(name)
        revisions = {r.revision: r for r in self.history(name)}
        wanted = to if to is not None else current.revision - 1
        if wanted not in revisions or wanted == current.revision:
            raise DeploymentNotFoundError(
                f"Deployment '{name}' has no revision {wanted} to roll back to "
                f"(it is at revision {current.revision}).",
                hint="See its revisions with 'plinth deploy history NAME'.",
            )
        earlier = revisions[wanted]
        return self.apply(
            earlier.spec,
            name=name,
            target=current.target,
            reason=reason or f"rollback to revision {wanted}",
            action="rollback",
        )


def _info(row: Any) -> DeploymentInfo:
    return DeploymentInfo(
        row.name,
        row.model_name,
        row.revision,
        DeploymentSpec.from_dict(row.spec),
        row.target,
        row.updated_at,
        row.updated_by,
    )

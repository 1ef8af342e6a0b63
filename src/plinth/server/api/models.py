"""Registered models: list, versions, cards, gate decisions, and moving aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from plinth.governance.access import Principal
from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/models", tags=["models"])
READ = [Depends(require("models:read"))]
ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
AliasName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
Version = Annotated[int, Path(ge=1, le=2**31)]


class AliasMove(BaseModel):
    """The version an alias should point at, and why."""

    version: int = Field(ge=1, le=2**31)
    reason: str | None = Field(default=None, max_length=2000)


@router.get("", response_model=Page, dependencies=READ, summary="Registered models")
def list_models(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Every registered model with its newest version and aliases.

    Example:
        >>> # GET /api/v1/models
    """
    models = workspace(request).models.list()
    return paginate(lambda n: models[:n], limit=limit, cursor=cursor, convert=_to_dict)


@router.get("/{name}", dependencies=READ, summary="One model with its versions")
def get_model(request: Request, name: ModelName) -> dict[str, Any]:
    """A model's summary, aliases and every version, newest first.

    Example:
        >>> # GET /api/v1/models/delay
    """
    ws = workspace(request)
    versions = ws.models.versions(name)
    summary = next((m for m in ws.models.list() if m.name == name), None)
    return {
        **(summary.to_dict() if summary else {"name": name}),
        "versions": [v.to_dict() for v in reversed(versions)],
    }


@router.get("/{name}/versions/{version}", dependencies=READ, summary="One model version")
def get_version(request: Request, name: ModelName, version: Version) -> dict[str, Any]:
    """Provenance, signature, metrics and files of one version.

    Example:
        >>> # GET /api/v1/models/delay/versions/3
    """
    return workspace(request).models.get(f"{name}:{version}").to_dict()


@router.get("/{name}/card", dependencies=READ, summary="The model card of a version")
def get_card(
    request: Request,
    name: ModelName,
    version: Annotated[int | None, Query(ge=1, le=2**31, description="Default: newest.")] = None,
) -> dict[str, Any]:
    """The model card (intended use, data, metrics, limitations, lineage) of a version.

    Example:
        >>> # GET /api/v1/models/delay/card?version=3
    """
    uri = f"{name}:{version}" if version is not None else name
    return json_ready(workspace(request).models.card(uri).to_dict())


@router.get("/{name}/gates", response_model=Page, dependencies=READ, summary="Gate decisions")
def get_gates(
    request: Request,
    name: ModelName,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The promotion-gate decisions recorded for a model (or one version).

    Example:
        >>> # GET /api/v1/models/delay/gates
    """
    from plinth.registry.gates import decisions

    ws = workspace(request)
    ws.models.versions(name)  # 404 for an unknown model
    found = decisions(ws, name, version)
    return paginate(lambda n: found[:n], limit=limit, cursor=cursor, convert=json_ready)


@router.put("/{name}/aliases/{alias}", summary="Point an alias at a version")
def set_alias(
    request: Request,
    name: ModelName,
    alias: AliasName,
    body: AliasMove,
    principal: Annotated[Principal, Depends(require("models:promote"))],
) -> dict[str, Any]:
    """Move (or create) an alias; the change is audited as the caller.

    Example:
        >>> # PUT /api/v1/models/delay/aliases/champion {"version": 3, "reason": "AUC up"}
    """
    ws = workspace(request)
    event = ws.models.set_alias(name, alias, body.version, body.reason, actor=principal.subject)
    return {"name": name, "alias": alias, "version": body.version, "changed": event is not None,
            "event": event.to_dict() if event else None}  # fmt: skip


@router.delete("/{name}/aliases/{alias}", summary="Remove an alias")
def remove_alias(
    request: Request,
    name: ModelName,
    alias: AliasName,
    principal: Annotated[Principal, Depends(require("models:promote"))],
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    """Remove an alias; the version it held stays in the history.

    Example:
        >>> # DELETE /api/v1/models/delay/aliases/challenger
    """
    ws = workspace(request)
    event = ws.models.remove_alias(name, alias, reason, actor=principal.subject)
    return {"name": name, "alias": alias, "event": event.to_dict()}


def _to_dict(item: Any) -> Any:
    return item.to_dict()

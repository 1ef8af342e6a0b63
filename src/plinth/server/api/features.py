"""Feature store definitions: every applied entity, view and service; the applied views and
one view with its definition and watermark; applying definitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.governance.access import Principal
from plinth.server.api._common import NAME, json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

# Permissions per route: a router-wide read dependency would name the write route's
# permission 'features:read'.
router = APIRouter(prefix="/features", tags=["features"])
READ = [Depends(require("features:read"))]


@router.get(
    "/views", dependencies=READ, response_model=Page, summary="Applied feature views, by name"
)
def list_views(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The newest version of every applied feature view.

    Example:
        >>> # GET /api/v1/features/views
    """
    items = [json_ready(v.to_dict()) for v in workspace(request).features.view_infos()]
    return paginate(lambda n: items[:n], limit=limit, cursor=cursor)


@router.get(
    "/definitions",
    dependencies=READ,
    response_model=Page,
    summary="Applied entities, feature views and services",
)
def list_definitions(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The newest version of every applied definition, as ``plinth features list`` lists them:
    entities, then feature views, then feature services, each by name; every item is the
    definition with its ``kind`` and ``version``.

    Example:
        >>> # GET /api/v1/features/definitions
    """
    found = workspace(request).features.definitions()
    items = [json_ready({"kind": k, "version": v, **d.spec()}) for k, d, v in found]
    return paginate(lambda n: items[:n], limit=limit, cursor=cursor)


@router.get(
    "/views/{name}",
    dependencies=READ,
    summary="One feature view: definition, version and watermark",
)
def get_view(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> dict[str, Any]:
    """One applied feature view with its version and materialization watermark.

    Example:
        >>> # GET /api/v1/features/views/weather
    """
    return json_ready(workspace(request).features.view_info(name).to_dict())


class DefinitionSpec(BaseModel):
    """One definition as ``plinth.features.definitions.specs_of`` sends it: its kind and spec
    (the fields of the kind; the others are left out)."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["entity", "view", "service"]
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=10_000)
    join_keys: list[Annotated[str, Field(max_length=256)]] | None = Field(None, max_length=64)
    source: str | None = Field(None, max_length=256)
    entities: list[Annotated[str, Field(max_length=128)]] | None = Field(None, max_length=64)
    timestamp: str | None = Field(None, max_length=256)
    created_timestamp: str | None = Field(None, max_length=256)
    ttl: str | float | None = None
    features: (
        dict[str, Annotated[str, Field(max_length=10_000)]]
        | list[Annotated[str, Field(max_length=256)]]
        | None
    ) = Field(None, max_length=10_000)


class DefinitionsApply(BaseModel):
    """Definitions to apply: entities, feature views and feature services."""

    definitions: list[DefinitionSpec] = Field(min_length=1, max_length=10_000)


@router.post("/apply", summary="Lint and record feature definitions")
def apply_definitions(
    request: Request,
    body: DefinitionsApply,
    principal: Annotated[Principal, Depends(require("features:write"))],
) -> dict[str, Any]:
    """Lint the definitions against the lake and each other, then record a new version of
    each one that is new or changed, as ``plinth features apply`` does; the changes are
    audited as the caller. Answers what each definition became (``created``, ``changed``
    or ``unchanged``, with its version).

    Example:
        >>> # POST /api/v1/features/apply {"definitions": [{"kind": "entity", "name": "id"}]}
    """
    from plinth.features.definitions import from_specs

    items = [d.model_dump(exclude_unset=True) for d in body.definitions]
    changes = workspace(request).features.apply(from_specs(items), actor=principal.subject)
    return {"changes": json_ready(changes)}

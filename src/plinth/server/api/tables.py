"""Lake tables: list, one table, its versions, its latest quality results and profiles; data
contracts: list, show and apply."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from plinth.governance.access import Principal
from plinth.server.api._common import NAME, json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

# Permissions per route, not per router: a router-wide read dependency would come first
# and name a write route's permission 'tables:read'.
router = APIRouter(prefix="/tables", tags=["tables"])
contracts_router = APIRouter(
    prefix="/contracts", tags=["tables"], dependencies=[Depends(require("tables:read"))]
)
READ = [Depends(require("tables:read"))]
TableName = Annotated[str, Path(pattern=NAME, description="A lake table's name.")]


@router.get(
    "", dependencies=READ, response_model=Page, summary="Lake tables with their latest version"
)
def list_tables(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Every lake table, by name, one page at a time.

    Example:
        >>> # GET /api/v1/tables?limit=10
    """
    tables = workspace(request).lake.tables()
    return paginate(lambda n: tables[:n], limit=limit, cursor=cursor, convert=json_ready)


@router.get("/{name}", dependencies=READ, summary="One table with its latest version and contract")
def get_table(request: Request, name: TableName) -> dict[str, Any]:
    """A table with its latest version and the data contract applied to it, if any.

    Example:
        >>> # GET /api/v1/tables/flights
    """
    ws = workspace(request)
    info = ws.lake.table(name)
    contract = ws.quality.contract(name)
    return {**json_ready(info), "contract": json_ready(contract) if contract else None}


@router.get(
    "/{name}/versions",
    dependencies=READ,
    response_model=Page,
    summary="A table's versions, newest first",
)
def table_versions(
    request: Request, name: TableName, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Every recorded version of a table, newest first.

    Example:
        >>> # GET /api/v1/tables/flights/versions
    """
    versions = workspace(request).lake.history(name)[::-1]
    return paginate(lambda n: versions[:n], limit=limit, cursor=cursor, convert=json_ready)


@router.get(
    "/{name}/quality", dependencies=READ, response_model=Page, summary="Latest quality results"
)
def table_quality(
    request: Request, name: TableName, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """A table's quality results, newest first.

    Example:
        >>> # GET /api/v1/tables/flights/quality?limit=5
    """
    ws = workspace(request)
    ws.lake.table(name)  # 404 for an unknown table
    return paginate(
        lambda n: ws.quality.results(name, limit=n), limit=limit, cursor=cursor, convert=json_ready
    )


@router.get("/{name}/profile", dependencies=READ, summary="The column profile of one version")
def table_profile(
    request: Request,
    name: TableName,
    version: Annotated[int | None, Query(ge=0, le=2**31, description="Default: latest.")] = None,
) -> dict[str, Any]:
    """The profile (counts, nulls, histograms, top values) of a table version, computed and
    stored on first request.

    Example:
        >>> # GET /api/v1/tables/flights/profile?version=2
    """
    from plinth.quality.profiles import profile_version

    ws = workspace(request)
    info = ws.lake.version(name, version)
    return json_ready(profile_version(ws.lake, name, info.version))


@router.get(
    "/{name}/summary",
    dependencies=READ,
    summary="Freshness, volume, schema changes and shifts of one version",
)
def table_summary(
    request: Request,
    name: TableName,
    version: Annotated[int | None, Query(ge=0, le=2**31, description="Default: latest.")] = None,
    against: Annotated[
        int | None, Query(ge=0, le=2**31, description="Reference version (default: previous).")
    ] = None,
) -> dict[str, Any]:
    """What ``plinth quality TABLE`` prints: freshness, volume, schema changes, the column
    shifts against a reference version, recent events and upstream lineage. Anomalies of the
    version are detected and recorded first (once per kind and version), as locally.

    Example:
        >>> # GET /api/v1/tables/flights/summary?version=3&against=1
    """
    from plinth.quality.observability import summarize

    summary = summarize(workspace(request).lake, name, against=against, version=version)
    return json_ready(summary.to_dict())


# -- contracts -----------------------------------------------------------------------------


class ContractApply(BaseModel):
    """A data contract to apply, as its spec (what ``Contract.spec()`` gives), and the file it
    came from."""

    contract: dict[str, Any] = Field(description="The contract: table, columns, checks ...")
    origin: str | None = Field(default=None, max_length=4096)


@contracts_router.get("", response_model=Page, summary="Tables with a contract")
def list_contracts(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The latest contract of every table that has one, by table name.

    Example:
        >>> # GET /api/v1/contracts
    """
    found = workspace(request).quality.contracts()
    return paginate(lambda n: found[:n], limit=limit, cursor=cursor, convert=_contract)


@router.get("/{name}/contract", dependencies=READ, summary="A table's data contract")
def get_contract(
    request: Request,
    name: TableName,
    version: Annotated[int | None, Query(ge=1, le=2**31, description="Default: latest.")] = None,
) -> dict[str, Any]:
    """A table's contract (the latest version by default); 404 when it has none.

    Example:
        >>> # GET /api/v1/tables/flights/contract?version=2
    """
    return _contract(workspace(request).quality.require_contract(name, version))


@router.put("/{name}/contract", summary="Apply a data contract to a table")
def apply_contract(
    request: Request,
    name: TableName,
    body: ContractApply,
    principal: Annotated[Principal, Depends(require("tables:write"))],
) -> dict[str, Any]:
    """Validate a contract against the table and record a new version if it changed, as
    ``plinth contract apply`` does; the change is audited as the caller, and the stored
    profiles of the columns it marks as personal data are scrubbed.

    Example:
        >>> # PUT /api/v1/tables/flights/contract {"contract": {"table": "flights", ...}}
    """
    from plinth.errors import ContractError
    from plinth.quality.contracts import contract_from_spec

    contract = contract_from_spec(body.contract, body.origin or "The contract sent")
    if contract.table != name:
        raise ContractError(
            f"The contract is for table '{contract.table}', not '{name}'.",
            hint=f"PUT it to /api/v1/tables/{contract.table}/contract.",
        )
    applied = workspace(request).quality.apply(contract, body.origin, actor=principal.subject)
    return _contract(applied)


def _contract(applied: Any) -> dict[str, Any]:
    return json_ready(applied.to_dict())

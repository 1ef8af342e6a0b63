"""Registered models: list, versions, cards, gate decisions, alias history, diffs, moving
aliases, and registering a version packaged on a client (its files uploaded first) or
downloading a version's files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from plinth.governance.access import Principal
from plinth.server.api._common import binary_body, json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/models", tags=["models"])
READ = [Depends(require("models:read"))]
ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
AliasName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
Version = Annotated[int, Path(ge=1, le=2**31)]
WRITE = [Depends(require("models:write"))]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


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


@router.get(
    "/{name}/alias-history", response_model=Page, dependencies=READ, summary="Alias history"
)
def alias_history(
    request: Request,
    name: ModelName,
    alias: Annotated[str | None, Query(max_length=64, description="Only this alias.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Every change of a model's aliases (or of one alias), oldest first.

    Example:
        >>> # GET /api/v1/models/delay/alias-history?alias=champion
    """
    events = workspace(request).models.alias_history(name, alias)
    return paginate(lambda n: events[:n], limit=limit, cursor=cursor, convert=_to_dict)


@router.get(
    "/{name}/versions/{version}/diff/{other}/{other_version}",
    dependencies=READ,
    summary="Two versions side by side",
)
def diff_versions(
    request: Request, name: ModelName, version: Version, other: ModelName, other_version: Version
) -> dict[str, Any]:
    """Parameters, metrics, signature, training data and features of two versions, row by
    row (``rows``: section, key, the value in each, whether they differ).

    Example:
        >>> # GET /api/v1/models/delay/versions/2/diff/delay/3
    """
    found = workspace(request).models.diff(f"{name}:{version}", f"{other}:{other_version}")
    return json_ready(found)


class FileStored(BaseModel):
    """A model file just stored in the artifact store, by its content's digest."""

    digest: str
    size: int


class UploadedFile(BaseModel):
    """A file uploaded with ``POST /models/{name}/files``: its name and digest."""

    name: FileName
    digest: Digest


class ExampleFile(UploadedFile):
    """The uploaded input example: ``input_example.parquet`` or ``input_example.npy``."""

    name: Annotated[str, Field(pattern=r"^input_example\.(parquet|npy)$")]


class FeatureRef(BaseModel):
    """An applied feature service: its name, and its definition's digest for an exact form."""

    name: str = Field(min_length=1, max_length=256)
    digest: str | None = Field(default=None, max_length=128)


class VersionRegistration(BaseModel):
    """A version packaged on a client (``plinth.registry.versions.package``), its files
    already uploaded: what the registry needs to record it as locally."""

    flavor: str = Field(min_length=1, max_length=64)
    meta: dict[str, Any] = Field(default_factory=dict)
    files: dict[FileName, Digest] = Field(min_length=1, max_length=1000)
    example: ExampleFile | None = None
    signature: dict[str, Any] | None = None
    infer_signature: bool = Field(
        default=False, description="Infer it from the training set (signature='auto')."
    )
    feature_names: list[Annotated[str, Field(max_length=1024)]] | None = Field(
        default=None, max_length=100_000
    )
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    training_set: str | None = Field(default=None, max_length=256)
    features: FeatureRef | None = None
    metrics: dict[str, float] | None = None
    description: str | None = Field(default=None, max_length=100_000)
    tags: dict[str, Any] | None = None


@router.post(
    "/{name}/files",
    response_model=FileStored,
    status_code=201,
    dependencies=WRITE,
    summary="Upload a file of a version to register",
    openapi_extra=binary_body("The file's bytes, at most 512 MiB (else 413)."),
)
async def upload_file(request: Request, name: ModelName) -> FileStored:
    """Store the raw request body in the artifact store (content-addressed) for a version
    about to be registered with ``POST /models/{name}/versions``.

    Example:
        >>> # POST /api/v1/models/delay/files  <bytes>  ->  {"digest": "9f2c...", "size": 1234}
    """
    from plinth.server.api.runs import MAX_ARTIFACT_BYTES, _read_body

    data = await _read_body(request, MAX_ARTIFACT_BYTES)
    artifacts = workspace(request).artifacts
    ref = await run_in_threadpool(artifacts.put_bytes, data)
    # The receipt a registration of this model checks: a digest alone is no proof that the
    # caller had the bytes (any stored artifact's digest can be learnt elsewhere).
    await run_in_threadpool(artifacts.name, _receipt(name, ref.digest), ref)
    return FileStored(digest=ref.digest, size=ref.size)


def _receipt(name: str, digest: str) -> str:
    return f"uploads/models/{name}/{digest}"


@router.post("/{name}/versions", status_code=201, summary="Register a version from its files")
def register_version(
    request: Request,
    name: ModelName,
    body: VersionRegistration,
    principal: Annotated[Principal, Depends(require("models:write"))],
) -> dict[str, Any]:
    """Register the next version of ``name`` from uploaded files, with the registry's own
    provenance (run, training set, feature service), signature and audit, as the caller.

    Example:
        >>> # POST /api/v1/models/delay/versions {"flavor": "sklearn", "files": {...}, ...}
    """
    from plinth.registry.versions import register_package

    ws = workspace(request)
    packaged = _package_of(ws, name, body)
    features = (body.features.name, body.features.digest) if body.features else None
    info = register_package(
        ws,
        name,
        packaged,
        run_id=body.run_id,
        features=features,
        training_set=body.training_set,
        metrics=body.metrics,
        description=body.description,
        tags=body.tags,
        actor=principal.subject,
    )
    # The version holds its files now; its receipts are spent.
    digests = {*body.files.values(), *([body.example.digest] if body.example else [])}
    for digest in digests:
        ws.artifacts.unname(_receipt(name, digest))
    return info.to_dict()


def _uploaded(ws: Any, name: str, file: str, digest: str) -> bytes:
    from plinth.errors import NotFoundError

    try:
        found = ws.artifacts.resolve(_receipt(name, digest)) and ws.artifacts.exists(digest)
    except NotFoundError:
        found = False
    if not found:
        raise NotFoundError(
            f"The file '{file}' (sha256:{digest}) of the new version of '{name}' has not "
            "been uploaded.",
            hint=f"Upload it first with POST /api/v1/models/{name}/files.",
        )
    return ws.artifacts.get_bytes(digest)


def _package_of(ws: Any, name: str, body: VersionRegistration) -> Any:
    from plinth.errors import ConfigError
    from plinth.registry.flavors import get_flavor
    from plinth.registry.signature import Signature
    from plinth.registry.versions import Package

    get_flavor(body.flavor)
    signature: Any = "auto" if body.infer_signature else None
    if body.signature is not None:
        try:
            signature = Signature.from_dict(body.signature)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"The signature of the new version of '{name}' is malformed: {exc!r}.",
                hint="Send Signature.to_dict(), or leave the signature out.",
            ) from exc
    files = {f: _uploaded(ws, name, f, d) for f, d in body.files.items()}
    example = None
    if body.example is not None:
        data = _uploaded(ws, name, body.example.name, body.example.digest)
        example = (data, body.example.name)
    # Not trusted: the server never loads (unpickles) a client's files, so an inferred
    # signature keeps the inputs only.
    return Package(
        body.flavor, files, dict(body.meta), example, signature, body.feature_names, trusted=False
    )


@router.get(
    "/{name}/versions/{version}/files/{file}",
    dependencies=READ,
    summary="Download a file of a version",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(
    request: Request,
    name: ModelName,
    version: Version,
    file: Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")],
) -> FileResponse:
    """Stream one file of a version (``manifest.json`` for its manifest), verified against
    its digest before the first byte is sent, as ``plinth models export`` copies it.

    Example:
        >>> # GET /api/v1/models/delay/versions/3/files/manifest.json
    """
    import shutil

    from plinth.errors import NotFoundError
    from plinth.registry.store import MANIFEST

    info = workspace(request).models.get(f"{name}:{version}")
    digest = info.manifest_digest if file == MANIFEST else info.files.get(file)
    if digest is None:
        raise NotFoundError(
            f"Version {version} of model '{name}' has no file '{file}'.",
            hint=f"Its files are: {', '.join([MANIFEST, *info.files])}.",
        )
    copy = workspace(request).artifacts.temp_copy(digest)
    return FileResponse(
        copy,
        media_type="application/octet-stream",
        filename=file,
        background=BackgroundTask(shutil.rmtree, copy.parent, ignore_errors=True),
    )


def _to_dict(item: Any) -> Any:
    return item.to_dict()

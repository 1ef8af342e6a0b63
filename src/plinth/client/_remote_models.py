"""Models through the server: registering a version packaged in this process, and
exporting a version's files from the server.

Registering packages the model here with the registry's own code
(:func:`plinth.registry.versions.package`: flavor files, input example, signature), uploads
each file to ``POST /models/{name}/files`` (content-addressed on the server, 413 past its
limit), then ``POST /models/{name}/versions`` records the version from those files with the
server's registry (run, training set, feature service, audit), as the token's owner.
Exporting streams each file from ``GET /models/{name}/versions/{v}/files/{file}`` into the
folder, checking every byte against the digests the server's catalog recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from plinth.client import _decode as decode

if TYPE_CHECKING:
    from plinth.client.remote import RemoteClient
    from plinth.registry import ModelVersionInfo

__all__ = ["download", "export", "register"]

#: Bytes read from a download at a time.
CHUNK = 1024 * 1024


def register(
    client: RemoteClient,
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
    """Package ``model`` here, upload its files and register it on the server.

    Example:
        >>> # register(client, model, "delay", run=run, example=frame[:5])
    """
    from plinth.registry.uri import check_name
    from plinth.registry.versions import (
        feature_ref,
        package,
        run_ref,
        training_set_ref,
        with_training_signature,
    )

    check_name(name)
    packaged = package(model, signature=signature, example=example, flavor=flavor)
    # With the training set's data at hand the whole signature is inferred here, where the
    # model is in memory; the server infers only the inputs (it never loads a client's files).
    packaged = with_training_signature(packaged, training_set)
    run_id = run_ref(run)
    training = training_set_ref(training_set)
    service = feature_ref(features)
    base = f"/models/{quote(name, safe='')}"

    def upload(data: bytes) -> str:
        return str(client._upload(f"{base}/files", data)["digest"])

    body: dict[str, Any] = {
        "flavor": packaged.flavor,
        "meta": packaged.meta,
        "files": {file: upload(data) for file, data in packaged.files.items()},
        "feature_names": packaged.feature_names,
        "run_id": run_id,
        "training_set": training,
        "features": {"name": service[0], "digest": service[1]} if service else None,
        "metrics": {str(k): float(v) for k, v in (metrics or {}).items()},
        "description": description,
        "tags": {str(k): str(v) for k, v in (tags or {}).items()},
    }
    if packaged.example is not None:
        data, file = packaged.example
        body["example"] = {"name": file, "digest": upload(data)}
    if isinstance(packaged.signature, str):  # "auto" and only a training set id
        body["infer_signature"] = True
    elif packaged.signature is not None:
        body["signature"] = packaged.signature.to_dict()
    return decode.model_version_of(client._post(f"{base}/versions", body))


def download(client: RemoteClient, path: str, target: Path, digest: str) -> Path:
    """Stream ``GET path`` into ``target``, which appears only if the bytes hash to
    ``digest`` (else :class:`~plinth.errors.IntegrityError`, and nothing is written).

    Example:
        >>> # download(client, "/models/delay/versions/3/files/model.pkl", Path("m.pkl"), d)
    """
    import httpx

    from plinth._core.files import atomic_writer
    from plinth.client._errors import raise_for
    from plinth.errors import IntegrityError

    hasher = hashlib.sha256()
    try:
        with client._http.stream("GET", path, headers={"Accept": "*/*"}) as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            with atomic_writer(target) as out:
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                if hasher.hexdigest() != digest:
                    raise IntegrityError(
                        f"The file '{target.name}' from the server hashes to "
                        f"sha256:{hasher.hexdigest()}, not to sha256:{digest} as the catalog "
                        "records.",
                        hint="The stored file was altered or corrupted on the way; it was not "
                        "written.",
                    )
    except httpx.TransportError as exc:
        raise client._unreachable(exc) from exc
    return target


def export(client: RemoteClient, name: str, version: int | str, folder: str | Path) -> Path:
    """Write a version's files and manifest from the server to ``folder``, as
    ``ws.models.export`` writes them locally.

    Example:
        >>> # export(client, "delay", "champion", "exports/delay")
    """
    import tempfile

    from plinth.registry.store import MANIFEST, write_export

    info = client.model_version(name, version)
    base = f"/models/{quote(info.name, safe='')}/versions/{info.version}/files"

    def copy(digest: str, target: Path) -> None:
        download(client, f"{base}/{quote(target.name, safe='')}", target, digest)

    with tempfile.TemporaryDirectory(prefix="plinth-manifest-") as scratch:
        manifest = download(client, f"{base}/{MANIFEST}", Path(scratch) / MANIFEST,
                            info.manifest_digest)  # fmt: skip
        data = manifest.read_bytes()
    return write_export(Path(folder), info.manifest_digest, data, info.files, copy)

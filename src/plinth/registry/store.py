"""Stored model versions: files in the artifact store, listed by a manifest, verified on load.

A version's files (the flavor's files and an optional input example) are stored
content-addressed; the **manifest** lists them by name with their sha256 digests, together
with the flavor, the flavor's metadata and the signature. The catalog keeps the manifest's
digest and the file digests, so loading checks, in order: the manifest hashes to the
catalog's digest, its file list equals the catalog's, and every file hashes to its digest
(the artifact store checks each read). Nothing is unpickled before all of that holds.

A version exported to a folder (``manifest.json`` plus the files) can be loaded elsewhere
with :func:`load_folder`: the files must hash to the manifest's digests, and a flavor that
unpickles (scikit-learn, LightGBM wrappers, pickled torch modules) is loaded only when the
manifest's own digest is one the catalog holds: unverified pickles are never loaded.

Example:
    >>> # stored = save(ws, "lightgbm", files, meta, signature=None, example=None)
    >>> # manifest, files = fetch(ws, stored.manifest_digest, stored.files)
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth._core.files import atomic_writer
from plinth.errors import ConfigError, IntegrityError, NotFoundError
from plinth.registry.flavors import get_flavor

if TYPE_CHECKING:
    from plinth.workspace import Workspace

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: Most rows of an input example kept with a version.
EXAMPLE_ROWS = 100
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class StoredModel:
    """What :func:`save` stored: the manifest's digest and content, and the file digests."""

    manifest_digest: str
    manifest: dict[str, Any]
    files: dict[str, str]
    example_digest: str | None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_file_name(name: str) -> str:
    if not isinstance(name, str) or not _FILE_NAME.match(name) or name == MANIFEST:
        raise IntegrityError(
            f"The model manifest lists a file named {name!r}, which is not a plain file name.",
            hint="The manifest was not written by Plinth or was altered; it will not be used.",
        )
    return name


def example_bytes(example: Any) -> tuple[bytes, str] | None:
    """Serialize an input example (its first :data:`EXAMPLE_ROWS` rows): Parquet for
    tables, ``.npy`` for arrays. Returns the bytes and the file name, or ``None``.

    Example:
        >>> import pandas as pd
        >>> example_bytes(pd.DataFrame({"a": [1]}))[1]
        'input_example.parquet'
    """
    import numpy as np

    from plinth.registry.signature import to_frame

    if example is None:
        return None
    if isinstance(example, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, example[:EXAMPLE_ROWS], allow_pickle=False)
        return buffer.getvalue(), "input_example.npy"
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(example, pa.Table):
        table = example.slice(0, EXAMPLE_ROWS)
    else:
        table = pa.Table.from_pandas(to_frame(example).head(EXAMPLE_ROWS), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue(), "input_example.parquet"


def read_example(name: str, data: bytes) -> Any:
    """Read a stored example back: a pandas DataFrame, or a NumPy array.

    Example:
        >>> import pandas as pd
        >>> read_example(*reversed(example_bytes(pd.DataFrame({"a": [1]})))).a.tolist()
        [1]
    """
    if name.endswith(".npy"):
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()


def save(
    ws: Workspace,
    flavor: str,
    files: Mapping[str, bytes],
    meta: Mapping[str, Any],
    *,
    signature: Mapping[str, Any] | None,
    example: tuple[bytes, str] | None,
) -> StoredModel:
    """Store a flavor's files, the example and the manifest that lists them.

    Example:
        >>> # save(ws, "onnx", {"model.onnx": data}, meta, signature=None, example=None)
    """
    entries: dict[str, dict[str, Any]] = {}
    for name, data in files.items():
        ref = ws.artifacts.put_bytes(data)
        entries[_check_file_name(name)] = {"digest": ref.digest, "size": ref.size}
    example_name = None
    example_digest = None
    if example is not None:
        data, example_name = example
        ref = ws.artifacts.put_bytes(data)
        entries[example_name] = {"digest": ref.digest, "size": ref.size}
        example_digest = ref.digest
    manifest = {
        "format": MANIFEST_FORMAT,
        "flavor": flavor,
        "files": entries,
        "meta": dict(meta),
        "signature": dict(signature) if signature is not None else None,
        "example": example_name,
    }
    data = json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8")
    ref = ws.artifacts.put_bytes(data)
    return StoredModel(
        ref.digest, manifest, {n: e["digest"] for n, e in entries.items()}, example_digest
    )


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse and check a manifest's structure; raise :class:`IntegrityError` if malformed.

    Example:
        >>> parse_manifest(b'{"format": 1, "flavor": "onnx", "files": {}, "meta": {}}')["flavor"]
        'onnx'
    """
    try:
        manifest = json.loads(data)
        ok = (
            isinstance(manifest, dict)
            and manifest.get("format") == MANIFEST_FORMAT
            and isinstance(manifest.get("flavor"), str)
            and isinstance(manifest.get("files"), dict)
            and isinstance(manifest.get("meta"), dict)
            and all(
                isinstance(e, dict) and isinstance(e.get("digest"), str)
                for e in manifest["files"].values()
            )
        )
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise IntegrityError(
            "The model manifest is not a Plinth manifest (format 1).",
            hint="Export the version again with ws.models.export(...).",
        )
    for name in manifest["files"]:
        _check_file_name(name)
    return manifest


def _model_files(manifest: Mapping[str, Any]) -> dict[str, str]:
    example = manifest.get("example")
    return {n: e["digest"] for n, e in manifest["files"].items() if n != example}


def fetch(
    ws: Workspace, manifest_digest: str, catalog_files: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read a version's manifest and model files, each verified against the catalog.

    Raises :class:`IntegrityError` when any byte differs from what the catalog recorded.

    Example:
        >>> # manifest, files = fetch(ws, record.manifest_digest, record.files)
    """
    manifest = parse_manifest(ws.artifacts.get_bytes(manifest_digest))
    listed = {n: e["digest"] for n, e in manifest["files"].items()}
    if listed != dict(catalog_files):
        raise IntegrityError(
            f"The manifest sha256:{manifest_digest} lists other files than the catalog "
            "records for this model version.",
            hint="The stored manifest or the catalog row was altered; register the model again.",
        )
    files = {n: ws.artifacts.get_bytes(d) for n, d in _model_files(manifest).items()}
    return manifest, files


def load_native(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> Any:
    """Build the native model from verified files with the manifest's flavor.

    Example:
        >>> # model = load_native(manifest, files)
    """
    flavor = get_flavor(manifest["flavor"])
    return flavor.load(files, manifest["meta"])


def export(
    ws: Workspace, manifest_digest: str, catalog_files: Mapping[str, str], folder: Path
) -> Path:
    """Write a version's manifest and every file into ``folder`` (verified while copying).

    Example:
        >>> # export(ws, record.manifest_digest, record.files, Path("delay-3"))
    """
    data = ws.artifacts.get_bytes(manifest_digest)
    return write_export(folder, manifest_digest, data, catalog_files, ws.artifacts.get_file)


def write_export(
    folder: Path,
    manifest_digest: str,
    manifest_data: bytes,
    catalog_files: Mapping[str, str],
    copy: Callable[[str, Path], Any],
) -> Path:
    """Check a version's manifest against the catalog's record, then write each file it
    lists with ``copy(digest, path)`` (which must verify the bytes) and the manifest last.

    The artifact store copies locally; a client copies from the server's download route.

    Example:
        >>> # write_export(Path("delay-3"), digest, manifest_bytes, files, store.get_file)
    """
    actual = _sha256(manifest_data)
    if actual != manifest_digest:
        raise IntegrityError(
            f"The manifest sha256:{manifest_digest} read back hashes to sha256:{actual}.",
            hint="The stored manifest was altered or corrupted; register the model again.",
        )
    manifest = parse_manifest(manifest_data)
    if {n: e["digest"] for n, e in manifest["files"].items()} != dict(catalog_files):
        raise IntegrityError(
            f"The manifest sha256:{manifest_digest} lists other files than the catalog records.",
            hint="The stored manifest or the catalog row was altered; register the model again.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest["files"].items():
        copy(entry["digest"], folder / name)
    with atomic_writer(folder / MANIFEST) as handle:
        handle.write(manifest_data)
    return folder


def read_folder(path: str | Path) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    """Read an exported version: the manifest's digest, the manifest, and the model files,
    each checked against the manifest's digests.

    Example:
        >>> # digest, manifest, files = read_folder("delay-3")
    """
    location = Path(path)
    manifest_path = location / MANIFEST if location.is_dir() else location
    folder = manifest_path.parent
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"There is no model manifest at '{manifest_path}'.",
            hint="Point at a folder written by ws.models.export(...) or at its manifest.json.",
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"'{manifest_path}' is a folder, not a manifest.") from exc
    manifest = parse_manifest(data)
    files: dict[str, bytes] = {}
    for name, digest in _model_files(manifest).items():
        try:
            content = (folder / name).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"The model file '{name}' listed by {manifest_path} is missing.",
                hint="Copy the whole exported folder.",
            ) from exc
        actual = _sha256(content)
        if actual != digest:
            raise IntegrityError(
                f"The model file '{folder / name}' hashes to sha256:{actual}, not to "
                f"sha256:{digest} as its manifest says.",
                hint="The file was altered or corrupted; it will not be loaded.",
            )
        files[name] = content
    return _sha256(data), manifest, files


def load_folder(path: str | Path, trusted: Callable[[str], bool]) -> tuple[str, dict, Any]:
    """Load an exported version; a flavor that unpickles needs ``trusted(manifest_digest)``.

    Returns the manifest's digest, the manifest and the native model. Raises
    :class:`IntegrityError` for altered files, and for a pickle-based version whose manifest
    the catalog does not hold (nothing is unpickled then).

    Example:
        >>> # digest, manifest, model = load_folder("delay-3", trusted=lambda d: False)
    """
    digest, manifest, files = read_folder(path)
    flavor = get_flavor(manifest["flavor"])
    if flavor.unpickles(manifest["meta"]) and not trusted(digest):
        raise IntegrityError(
            f"The model at '{path}' is a {manifest['flavor']} pickle whose manifest "
            f"(sha256:{digest}) is not in this workspace's catalog; unverified pickles are "
            "never loaded, since loading one runs code.",
            hint="Load it in the workspace that registered it, or register the model in this "
            "workspace from its source.",
        )
    return digest, manifest, flavor.load(files, manifest["meta"])

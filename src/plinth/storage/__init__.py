"""Storage: a blob backend chosen by URL (local folder or ``s3://``) and the content-addressed
artifact store built on it.

Example:
    >>> import tempfile
    >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
    >>> ref = store.put_bytes(b"weights")
    >>> store.get_bytes(ref.digest)
    b'weights'
"""

from __future__ import annotations

from plinth.storage.artifacts import ArtifactRef, ArtifactStore
from plinth.storage.backends import Storage, open_storage
from plinth.storage.keys import safe_key

__all__ = ["ArtifactRef", "ArtifactStore", "Storage", "open_storage", "safe_key"]

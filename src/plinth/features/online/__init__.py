"""Online feature stores: the newest feature values per entity, served with the TTL enforced.

The backend is chosen by URL (``PLINTH_ONLINE_URL``): ``sqlite:///path`` or a plain path for
the embedded SQLite file, ``redis://host:port/db`` for Redis (the ``redis`` extra).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from plinth._core.urls import redact_url
from plinth.errors import ConfigError
from plinth.features.online.base import EXPIRED, MISSING, PRESENT, OnlineRow, OnlineStore
from plinth.features.online.sqlite import SQLiteOnlineStore, sqlite_path

if TYPE_CHECKING:
    from plinth.features.online.redis import RedisOnlineStore

__all__ = [
    "EXPIRED",
    "MISSING",
    "PRESENT",
    "OnlineRow",
    "OnlineStore",
    "RedisOnlineStore",
    "SQLiteOnlineStore",
    "open_online_store",
]

_REDIS_SCHEMES = ("redis", "rediss")


def open_online_store(url: str | os.PathLike[str]) -> OnlineStore:
    """Open the online store at ``url``: ``sqlite:///path``, a plain path, or ``redis://``.

    Example:
        >>> import tempfile
        >>> store = open_online_store(f"sqlite:///{tempfile.mkdtemp()}/online.db")
        >>> type(store).__name__
        'SQLiteOnlineStore'
        >>> store.close()
    """
    text = os.fspath(url)
    if not isinstance(text, str):
        raise ConfigError(f"Online store URL {text!r} is not text.")
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in _REDIS_SCHEMES:
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"The online store '{redact_url(text)}' needs the 'redis' package, which is "
                "not installed.",
                hint="Install the 'redis' extra: pip install 'plinth-ai[redis]'.",
            ) from exc
        from plinth.features.online.redis import RedisOnlineStore

        return RedisOnlineStore(text)
    if scheme in ("", "sqlite", "file"):
        return SQLiteOnlineStore(sqlite_path(text))
    raise ConfigError(
        f"Online store URL '{redact_url(text)}' has the unsupported scheme '{scheme}'.",
        hint="Use sqlite:///path/to/online.db, a plain file path, or redis://host:6379/0.",
    )


def __getattr__(name: str) -> Any:
    if name == "RedisOnlineStore":
        from plinth.features.online.redis import RedisOnlineStore

        return RedisOnlineStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

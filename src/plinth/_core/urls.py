"""URL helpers: redact credentials before a URL is stored or shown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Example:
        >>> redact_url("postgresql://bob:secret@db:5432/x")
        'postgresql://bob:***@db:5432/x'
        >>> redact_url("sqlite:///tmp/a.db")
        'sqlite:///tmp/a.db'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    # Keep the host and port text as written (the port may be malformed).
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

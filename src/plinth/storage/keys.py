"""Validation of storage names so that no name can escape its storage root."""

from __future__ import annotations

import re
from urllib.parse import unquote

from plinth.errors import UnsafePathError

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe(name: str, why: str) -> UnsafePathError:
    return UnsafePathError(
        f"The storage name {name!r} is refused: {why}.",
        hint="Use a relative name made of plain segments such as 'models/delay/model.bin'.",
    )


def safe_key(name: str) -> str:
    """Return ``name`` normalized as a relative storage key, or raise :class:`UnsafePathError`.

    Refused: empty names, absolute paths, drive letters, backslashes, ``..`` or ``.`` segments,
    percent-encoded characters, control characters and a leading ``~``.

    Example:
        >>> safe_key("models/delay/model.bin")
        'models/delay/model.bin'
        >>> safe_key("../etc/passwd")
        Traceback (most recent call last):
        ...
        plinth.errors.UnsafePathError: The storage name '../etc/passwd' is refused: ...
    """
    if not isinstance(name, str) or not name:
        raise _unsafe(str(name), "it is empty")
    if _PERCENT.search(name) or unquote(name) != name:
        raise _unsafe(name, "it contains percent-encoded characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise _unsafe(name, "it contains control characters")
    if "\\" in name:
        raise _unsafe(name, "it contains a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise _unsafe(name, "it is an absolute path")
    if name.startswith("~"):
        raise _unsafe(name, "it starts with '~'")
    segments = name.split("/")
    if any(seg in {"..", "."} for seg in segments):
        raise _unsafe(name, "it contains a '.' or '..' segment")
    cleaned = [seg for seg in segments if seg]
    if not cleaned:
        raise _unsafe(name, "it has no path segment")
    return "/".join(cleaned)
